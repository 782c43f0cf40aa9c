"""The actionability decision: a pure function from an issue's context and the repo's rules.

Signals are weighed into a score (0..1); a few of them decide the verdict outright, in this
order: duplicate, close-candidate, question, needs-decision, needs-hardware, needs-info.
An issue no gate stops is actionable when its score reaches the threshold.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from bot.config.triage import TriageRules
from bot.models import (
    ExistingPR,
    Issue,
    Mode,
    Priority,
    RelatedIssue,
    Signal,
    TriageDecision,
    Verdict,
)
from bot.triage.discussion import Thread, labelled_duplicate_target, thread_findings
from bot.triage.hardware import HardwareNeed, detect_hardware
from bot.triage.signals import (
    Finding,
    bare_title,
    content_findings,
    design_ask,
    is_docs,
    is_feature,
    question,
)
from bot.triage.text import Prepared, clip, normalise_label, prepare

if TYPE_CHECKING:
    from bot.github.trees import RepoTree

_ME_TOO_RE = re.compile(
    r"^\W{0,5}(?:\+1|same (?:problem|issue|here|error)|me too|any update\w{0,3}|want \+1)\W{0,5}$",
    re.I,
)
CLOSE_GATES = (
    "close_label",
    "merged_pr",
    "fixed_claim",
    "maintainer_closing",
    "out_of_scope",
    "not_a_bug",
    "reporter_resolved",
)
MAX_RELATED = 5  # related issues a decision carries (the search applies the score floor)
# This many linked PRs, none of which closes the issue: a design effort spanning several PRs.
MANY_PRS = 3
DESIGN_GATES = ("design_ask", "design_discussion", "many_prs")
INFO_GATES = (
    "waiting_for_info_label",
    "info_requested",
    "no_description",
    "screenshot_only_error",
)


def decide(
    issue: Issue,
    rules: TriageRules,
    *,
    existing_prs: Sequence[ExistingPR] = (),
    related: Sequence[RelatedIssue] = (),
    known_issues: Collection[int] = (),
    tree: RepoTree | None = None,
) -> TriageDecision:
    """Decide whether an agent can fix `issue` alone, with the evidence for it.

    `existing_prs` are verified PRs (bot/mirror/prs.py); `known_issues` are the numbers
    of `duplicate_candidates(issue, rules)` that the caller found to be issues (not PRs)
    of the same repository; `related` issues come from the mirror and exist too. `tree`
    is the default branch's tree: with it, code pointers are paths the repository has.
    """
    prepared = prepare(issue, rules, tree)
    thread = thread_findings(prepared, issue.repo, issue.author)
    findings = content_findings(prepared, rules.min_description_words) + thread.findings
    decisive = set(thread.decisive)

    label_findings = _label_findings(prepared, rules)
    findings += label_findings
    decisive.update(f.name for f in label_findings)
    if prepared.author_is_maintainer:
        findings.append(Finding("maintainer_authored", f"author: @{issue.author}"))

    lifted = bool(
        {"maintainer_invites_pr", "contributions_welcome_label", "maintainer_confirms"} & decisive
    )
    feature = is_feature(prepared, _label_set(rules.labels.feature))
    asked = question(prepared, _label_set(rules.labels.question))
    if asked:
        findings.append(asked)
    design = design_ask(prepared, feature)
    if design:
        findings.append(design)

    needs = detect_hardware(prepared, rules)
    available = {h.lower() for h in rules.available_hardware}
    missing_hardware = [n for n in needs if n.name.lower() not in available]
    if missing_hardware:
        findings.append(Finding("hardware_required", missing_hardware[0].evidence))

    prs = list(existing_prs)
    if len(prs) >= MANY_PRS and not any(pr.closes for pr in prs):
        listed = ", ".join(f"#{pr.number}" for pr in prs[:5])
        findings.append(Finding("many_prs", f"{len(prs)} linked pull requests: {listed}"))
    if any(pr.state == "open" for pr in prs):
        findings.append(Finding("open_pr", _pr_evidence(prs, "open")))
    closing = [pr for pr in prs if pr.state == "merged" and pr.closes]
    if closing:
        findings.append(Finding("merged_pr", _pr_evidence(closing, "merged")))
        decisive.add("merged_pr")

    duplicate_of = _duplicate_target(issue, prepared, thread, related, rules, known_issues)
    signals = _signals(findings, rules)
    score = round(min(1.0, max(0.0, sum(s.weight for s in signals))), 3)
    names = {f.name for f in findings}

    labelled_duplicate = any(f.name == "duplicate" for f in label_findings)
    verdict, reason = _verdict(
        names,
        decisive,
        lifted,
        duplicate_of is not None or labelled_duplicate,
        bool(asked),
        _design_reason(findings, decisive),
        missing_hardware,
    )
    if verdict is None:
        verdict = "actionable" if score >= rules.threshold else "needs-info"
        reason = (
            "score reaches the threshold"
            if verdict == "actionable"
            else "score below the threshold"
        )
    mode = _mode(prs, prepared, rules, feature)
    if verdict != "duplicate":
        duplicate_of = None
    return TriageDecision(
        repo=issue.repo,
        number=issue.number,
        verdict=verdict,
        score=score,
        signals=signals,
        hardware=[n.name for n in needs],
        existing_prs=prs,
        related=sorted(related, key=lambda r: (-r.score, r.number))[:MAX_RELATED],
        priority=_priority(issue, prepared, rules),
        mode=mode,
        summary=_summary(
            verdict, score, reason, signals, mode, prs, missing_hardware, duplicate_of
        ),
        missing=_missing(verdict, names, missing_hardware, duplicate_of),
        duplicate_of=duplicate_of,
    )


def _design_reason(findings: list[Finding], decisive: set[str]) -> str:
    """Why this is a design effort, or "" when it is not one."""
    names = {f.name for f in findings}
    if "design_ask" in names:
        return "design-level request"
    if "design_discussion" in decisive:
        return "a design or a decision is asked for in the discussion"
    if "many_prs" in names:
        return "a design effort spanning several pull requests"
    return ""


def _label_set(names: list[str]) -> set[str]:
    return {normalise_label(n) for n in names}


def _label_findings(prepared: Prepared, rules: TriageRules) -> list[Finding]:
    roles = (
        ("contributions_welcome_label", rules.labels.contributions_welcome),
        ("waiting_for_info_label", rules.labels.waiting_for_info),
        ("close_label", rules.labels.close),
        ("decision_label", rules.labels.needs_decision),
        ("duplicate", rules.labels.duplicate),
    )
    findings = []
    for name, configured in roles:
        wanted = _label_set(configured)
        hit = next((label for label in prepared.labels if label in wanted), None)
        if hit:
            findings.append(Finding(name, f"label: {hit}"))
    return findings


def _pr_evidence(prs: list[ExistingPR], state: str) -> str:
    chosen = [pr for pr in prs if pr.state == state][:3]
    listed = ", ".join(f"#{pr.number} ({pr.found_by})" for pr in chosen)
    return f"{state} PR {listed}"[:200]


def duplicate_candidates(issue: Issue, rules: TriageRules) -> list[int]:
    """Issues of the same repository this one may duplicate, by what maintainers wrote.

    The caller checks which exist (mirror, or one API read) and passes them to `decide`
    as `known_issues`: "duplicate of #N" is never said of an issue nobody has seen.
    """
    prepared = prepare(issue, rules)
    thread = thread_findings(prepared, issue.repo, issue.author)
    found = list(thread.duplicate_claims)
    if any(label in _label_set(rules.labels.duplicate) for label in prepared.labels):
        found += labelled_duplicate_target(prepared, issue.repo, issue.number)
    return [n for n in dict.fromkeys(found) if n < issue.number]


def _duplicate_target(
    issue: Issue,
    prepared: Prepared,
    thread: Thread,
    related: Sequence[RelatedIssue],
    rules: TriageRules,
    known_issues: Collection[int],
) -> int | None:
    """The original this issue duplicates: an existing, older issue of the same repository.

    Older only, so two issues can never name each other: of two candidates the earlier
    one is the original.
    """
    known = set(known_issues) | {
        r.number for r in related if (r.repo or issue.repo).lower() == issue.repo.lower()
    }

    def original(number: int) -> bool:
        return number < issue.number and number in known

    for number in thread.duplicate_claims:
        if original(number):
            return number
    if any(label in _label_set(rules.labels.duplicate) for label in prepared.labels):
        for number in labelled_duplicate_target(prepared, issue.repo, issue.number):
            if original(number):
                return number
    own = " ".join(bare_title(issue.title).lower().split())
    for other in related:
        if (
            original(other.number)
            and own
            and " ".join(bare_title(other.title).lower().split()) == own
        ):
            return other.number
    return None


def _signals(findings: list[Finding], rules: TriageRules) -> list[Signal]:
    signals: list[Signal] = []
    seen: set[str] = set()
    for finding in findings:
        if finding.name in seen:
            continue
        seen.add(finding.name)
        weight = round(rules.weight(finding.name) * finding.factor, 3)
        signals.append(
            Signal(name=finding.name, weight=weight, evidence=clip(finding.evidence, 200))
        )
    return sorted(signals, key=lambda s: (-abs(s.weight), s.name))


def _verdict(
    names: set[str],
    decisive: set[str],
    lifted: bool,
    duplicate: bool,
    asked: bool,
    design: str,
    missing_hardware: list[HardwareNeed],
) -> tuple[Verdict | None, str]:
    if duplicate:
        return "duplicate", "marked or evidently a duplicate"
    close = [gate for gate in CLOSE_GATES if gate in decisive]
    if close:
        return "close-candidate", close[0].replace("_", " ")
    if asked and not lifted:
        return "question", "reads as a usage question"
    if "decision_label" in decisive:
        return "needs-decision", "labelled for a maintainer decision"
    if design and not lifted:
        return "needs-decision", design
    if missing_hardware:
        return "needs-hardware", f"needs {', '.join(n.name for n in missing_hardware)}"
    info = [
        gate
        for gate in INFO_GATES
        if gate in names
        and (gate in decisive or gate in ("no_description", "screenshot_only_error"))
    ]
    if info and not (lifted and info[0] in ("no_description", "screenshot_only_error")):
        return "needs-info", info[0].replace("_", " ")
    return None, ""


def _mode(prs: list[ExistingPR], prepared: Prepared, rules: TriageRules, feature: bool) -> Mode:
    if any(pr.state == "open" for pr in prs):
        return "review-existing-pr"
    if is_docs(prepared, _label_set(rules.labels.documentation)):
        return "docs"
    return "implement" if feature else "fix"


def _priority(issue: Issue, prepared: Prepared, rules: TriageRules) -> Priority:
    me_too = sum(
        1
        for said in prepared.comments
        if said.role != "maintainer" and _ME_TOO_RE.match(said.part.text.strip())
    )
    reactions = issue.reaction_total + me_too
    comments = max(issue.comment_count, len(issue.comments))
    boosts = {normalise_label(name): boost for name, boost in rules.priority_labels.items()}
    labels = [label for label in issue.labels if normalise_label(label) in boosts]
    boost = max((boosts[normalise_label(label)] for label in labels), default=0.0)
    score = boost + 0.5 * reactions / (reactions + 5) + 0.3 * comments / (comments + 10)
    return Priority(
        score=round(min(1.0, max(0.0, score)), 3),
        reactions=reactions,
        comments=comments,
        labels=labels,
    )


def _summary(
    verdict: Verdict,
    score: float,
    reason: str,
    signals: list[Signal],
    mode: Mode,
    prs: list[ExistingPR],
    missing_hardware: list[HardwareNeed],
    duplicate_of: int | None,
) -> str:
    strongest = ", ".join(s.name.replace("_", " ") for s in signals if s.weight > 0)
    detail = {
        "actionable": f"{strongest or 'no evidence'}; mode {mode}",
        "needs-hardware": reason,
        "duplicate": f"duplicate of #{duplicate_of}" if duplicate_of else reason,
    }.get(verdict, reason)
    if verdict == "actionable" and mode == "review-existing-pr":
        open_prs = ", ".join(f"#{pr.number}" for pr in prs if pr.state == "open")
        detail += f" (build on {open_prs})"
    return f"{verdict} (score {score:.2f}): {detail}"[:300]


def _missing(
    verdict: Verdict,
    names: set[str],
    missing_hardware: list[HardwareNeed],
    duplicate_of: int | None,
) -> list[str]:
    if verdict == "actionable":
        return []
    if verdict == "duplicate":
        target = f"#{duplicate_of}" if duplicate_of else "the original issue"
        return [f"a reason this differs from {target}; otherwise follow {target}"]
    if verdict == "close-candidate":
        return ["a maintainer's word that it is not fixed or resolved yet"]
    if verdict == "question":
        return ["a concrete defect or a scoped change; a usage question is answered, not fixed"]
    if verdict == "needs-decision":
        return [
            "a maintainer decision on scope or design (a 'Contributions Welcome' label or a comment inviting a PR)"
        ]
    if verdict == "needs-hardware":
        wanted = ", ".join(n.name for n in missing_hardware)
        return [
            f"someone with {wanted} hardware to reproduce and test (or add it to available_hardware)"
        ]
    wants = []
    if "info_requested" in names:
        wants.append("answers to the maintainer's questions")
    if "waiting_for_info_label" in names:
        wants.append("the information the waiting-for-info label asks for")
    if "no_description" in names:
        wants.append("a description of what happens and what was expected")
    if not names & {"traceback", "error_message", "wrong_result"}:
        shot = " (as text, not a screenshot)" if "screenshot_only_error" in names else ""
        wants.append(
            f"the error message or full traceback{shot}, or for a wrong result the expected "
            "and the actual values"
        )
    if "reproduction" not in names:
        wants.append("a minimal script that reproduces it")
    if "versions" not in names:
        wants.append("library, Python and torch versions")
    if not names & {"code_pointer", "maintainer_confirms", "maintainer_points_to_code"}:
        wants.append("a pointer to the code involved or a maintainer's confirmation")
    return wants
