"""What the triage comment shows, computed from the decision (pure).

`comment_context` builds the template's context for prompts/comment.md.j2; the job
only fetches and writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.config.repo import RepoConfig
from bot.dispatch.planner import RunItem
from bot.models import ExistingPR, Signal, TriageDecision
from bot.store.artifacts import ArtifactRef
from bot.triage.engine import CLOSE_GATES, DESIGN_GATES, INFO_GATES
from bot.triage.signals import python_paths
from bot.triage.text import clip

# How a PR was found, in words a maintainer reads.
FOUND_BY_WORDS = {
    "closed-by": "closed this issue",
    "connected": "linked to this issue",
    "closing-keyword": "says it closes this issue",
    "timeline": "mentions this issue",
    "title": "names this issue in its title",
    "branch": "branch named after this issue",
    "comment": "named in a comment",
}


def pr_line(pr: ExistingPR) -> str:
    """'#12 (open, says it closes this issue)'; a state nobody reported is 'state unknown'."""
    state = "state unknown" if pr.state == "unknown" else pr.state
    return f"#{pr.number} ({state}, {FOUND_BY_WORDS.get(pr.found_by, pr.found_by)})"


def followup_lines(items: Sequence[RunItem]) -> list[str]:
    """What the triage comment says about dispatches of the issue, oldest first."""
    lines = []
    for item in items:
        if item.status == "dispatched":
            lines.append(f"Dispatched to an agent (run {item.run_id}).")
        elif item.status == "queued":
            waits = ", ".join(f"#{n}" for n in item.depends_on) or "a free slot"
            lines.append(f"Queued in run {item.run_id}: waits for {waits}.")
        elif item.status == "refused":
            lines.append(f"Not dispatched in run {item.run_id}: {item.reason or 'refused'}.")
        elif item.status == "done":
            pr = f"PR #{item.pr_number}" if item.pr_number else "A pull request"
            lines.append(
                f"{pr} {'merged' if item.outcome == 'merged' else 'closed without merging'} (run {item.run_id})."
            )
    return lines


@dataclass(frozen=True)
class Reason:
    """One plain-language reason: our words, then (optionally) a quote of the issue's text.

    `text` is ours (trusted); `quote` is the issue's (untrusted) and the template renders
    it as an inline code span.
    """

    text: str
    quote: str = ""


VERDICT_WORDS = {
    "actionable": "actionable",
    "needs-info": "needs more information",
    "needs-hardware": "needs hardware the agents lack",
    "needs-decision": "needs a maintainer's decision",
    "question": "a usage question",
    "duplicate": "a duplicate",
    "close-candidate": "probably ready to close",
}
MODE_WORDS = {
    "fix": "fix",
    "implement": "implement",
    "review-existing-pr": "review the existing PR",
    "docs": "docs",
}
# Signals that speak for the issue, strongest first, in words (the quote follows).
POSITIVE_WORDS = {
    "contributions_welcome_label": "labelled for contributions",
    "maintainer_invites_pr": "a maintainer invites a PR:",
    "maintainer_confirms": "a maintainer confirms it:",
    "traceback": "a full traceback",
    "wrong_result": "a wrong result, described:",
    "error_message": "the error message:",
    "reproduction": "a runnable reproduction",
    "code_pointer": "points to",
    "maintainer_points_to_code": "a maintainer points to",
    "fix_proposed": "a fix is proposed:",
    "scoped_ask": "a small, scoped change:",
    "versions": "versions given",
    "title_names_code": "the title names the code involved",
    "maintainer_authored": "filed by a maintainer",
    "open_pr": "an open PR to build on",
}
# Signals that hold an issue back, in words (the quote follows).
NEGATIVE_WORDS = {
    "duplicate": "called a duplicate:",
    "close_label": "labelled",
    "merged_pr": "a merged PR closes it:",
    "fixed_claim": "said to be fixed:",
    "maintainer_closing": "a maintainer is closing it:",
    "out_of_scope": "ruled out of scope:",
    "not_a_bug": "said to be expected behaviour:",
    "reporter_resolved": "the reporter resolved it:",
    "question": "reads as a usage question:",
    "decision_label": "labelled",
    "design_ask": "a design-level request:",
    "design_discussion": "a design or decision is asked for:",
    "many_prs": "a design effort across pull requests:",
    "hardware_required": "needs special hardware:",
    "waiting_for_info_label": "labelled",
    "info_requested": "a maintainer asked for more:",
    "no_description": "no description beyond the template",
    "screenshot_only_error": "the error is only in a screenshot",
    "cannot_reproduce": "could not be reproduced:",
    "vague_title": "a vague title:",
    "workaround_suggested": "a workaround was suggested:",
}
# Quotes of these signals add nothing a reader needs.
UNQUOTED = frozenset(
    {
        "traceback",
        "reproduction",
        "versions",
        "title_names_code",
        "maintainer_authored",
        "no_description",
        "screenshot_only_error",
        "contributions_welcome_label",
    }
)
# The verdict's own gate signals, to explain a verdict that is not actionable.
GATES = {
    "duplicate": ("duplicate",),
    "close-candidate": CLOSE_GATES,
    "question": ("question",),
    "needs-decision": ("decision_label", *DESIGN_GATES),
    "needs-hardware": ("hardware_required",),
    "needs-info": (*INFO_GATES, "cannot_reproduce", "vague_title"),
}
MAX_REASONS = 3
QUOTE_CHARS = 100
_WHERE = re.compile(r"^(?:title|body|labels|author|comment by @[\w.-]{0,60}):\s?")


def _quote(signal: Signal) -> str:
    """The evidence without its 'body: ' prefix, cut at a word boundary."""
    return clip(_WHERE.sub("", signal.evidence), QUOTE_CHARS)


def _repo_path(evidence: str) -> str:
    """The repository-relative part of a path in the evidence ('' when there is none).

    With the tree the evidence already is the repository's path; without it, what follows
    an installed copy (site-packages/) or a checkout (the last src/) is shown.
    """
    spans = python_paths(evidence)
    if not spans:
        return ""
    path = evidence[spans[0][0] : spans[0][1]]
    for marker in ("site-packages/", "dist-packages/", "/src/"):
        cut = path.rfind(marker)
        if cut != -1:
            path = path[cut + len(marker) :] if marker != "/src/" else path[cut + 1 :]
            break
    return path.lstrip("~/.")


def _reason(signal: Signal, words: str, by_name: dict[str, Signal]) -> Reason:
    if signal.name == "traceback" and "code_pointer" in by_name:
        path = _repo_path(by_name["code_pointer"].evidence)
        if path:
            return Reason("a traceback through", path)
    if signal.name in ("code_pointer", "maintainer_points_to_code"):
        return Reason(words, _repo_path(signal.evidence) or _quote(signal))
    if signal.name.endswith("_label"):
        return Reason(words, _quote(signal).removeprefix("label: "))
    if signal.name in UNQUOTED or not words.endswith(":"):
        return Reason(words.rstrip(":"))
    return Reason(words, _quote(signal))


def reasons(decision: TriageDecision, limit: int = MAX_REASONS) -> list[Reason]:
    """Up to `limit` plain-language reasons for the verdict, strongest first."""
    by_name = {s.name: s for s in decision.signals}
    if decision.verdict == "actionable":
        chosen = [n for n in POSITIVE_WORDS if n in by_name and by_name[n].weight > 0]
        if "code_pointer" in chosen and "traceback" in chosen:
            chosen.remove("code_pointer")  # said by "a traceback through <path>"
        return [_reason(by_name[n], POSITIVE_WORDS[n], by_name) for n in chosen[:limit]]
    found: list[Reason] = []
    if decision.verdict == "duplicate" and decision.duplicate_of is not None:
        found.append(Reason(f"duplicates #{decision.duplicate_of}, an older issue"))
    if decision.verdict == "needs-hardware" and decision.hardware:
        found.append(Reason("needs " + ", ".join(decision.hardware)))
    for name in GATES.get(decision.verdict, ()):
        if name in by_name and len(found) < limit:
            if name == "hardware_required" and found:
                continue
            if name == "merged_pr":
                closing = [p for p in decision.existing_prs if p.state == "merged" and p.closes]
                listed = ", ".join(f"#{p.number}" for p in closing[:3])
                found.append(Reason(f"merged {listed} closes this issue"))
                continue
            found.append(_reason(by_name[name], NEGATIVE_WORDS[name], by_name))
    if not found and decision.verdict == "needs-info":
        found.append(Reason("not enough evidence yet for an agent to work alone"))
    return found[:limit]


def next_step(decision: TriageDecision, config: RepoConfig) -> str:
    """What a maintainer can do now; never an invitation to dispatch what should not be."""
    label = f"`{config.labels.dispatch}`"
    if decision.verdict == "actionable":
        open_prs = [f"#{p.number}" for p in decision.existing_prs if p.state == "open"]
        if open_prs:
            return (
                f"Apply {label} to have an agent review and finish {', '.join(open_prs)} "
                "instead of starting over."
            )
        return f"Apply {label} to send it to an agent with the linked prompt."
    if decision.verdict == "duplicate":
        target = f"#{decision.duplicate_of}" if decision.duplicate_of else "the original issue"
        return (
            f"Follow {target}; close this one unless it differs (then say how, and triage reruns)."
        )
    if decision.verdict == "close-candidate":
        return "Check that it is fixed or settled (on the latest release) and close it."
    if decision.verdict == "question":
        return "Answer the question or point to the docs; there is nothing for an agent to fix."
    if decision.verdict == "needs-decision":
        return (
            "A maintainer decides scope and design; a comment inviting a PR or a "
            "contributions-welcome label makes it dispatchable."
        )
    if decision.verdict == "needs-hardware":
        return (
            "Someone with that hardware reproduces it, or add it to `triage.available_hardware` "
            "if the agents have it."
        )
    return "Once the points above are answered, triage runs again on the next edit or comment."


def hardware_line(decision: TriageDecision, config: RepoConfig) -> str:
    if not decision.hardware:
        return ""
    have = ", ".join(config.triage.available_hardware) or "nothing listed"
    return f"needs {', '.join(decision.hardware)}; the agents have {have}"


@dataclass(frozen=True)
class RelatedLine:
    number: int
    state: str
    title: str
    why: str


def related_lines(decision: TriageDecision, limit: int = 3) -> list[RelatedLine]:
    """The top related issues, each with its one-line reason (bot/mirror/related.py)."""
    lines = []
    for ref in decision.related[:limit]:
        if ref.number == decision.duplicate_of:
            continue
        why = ref.reason or (
            "shares " + ", ".join(ref.matched[:3]) if ref.matched else "similar text"
        )
        lines.append(RelatedLine(ref.number, ref.state, ref.title, why))
    return lines


def comment_context(
    decision: TriageDecision,
    config: RepoConfig,
    *,
    errors: list[str],
    artifact: ArtifactRef,
    artifact_url: str,
    expires: float,
    followups: list[str],
) -> dict[str, Any]:
    """Everything the comment template shows, computed from the decision (pure)."""
    return {
        "decision": decision,
        "verdict_words": VERDICT_WORDS[decision.verdict],
        "mode_words": MODE_WORDS.get(decision.mode, decision.mode),
        "reasons": reasons(decision),
        "hardware_line": hardware_line(decision, config),
        "prs": [(pr_line(p), p.title or "") for p in decision.existing_prs],
        "related": related_lines(decision),
        "next_step": next_step(decision, config),
        "threshold": config.triage.threshold,
        "config_error": "; ".join(errors),
        "artifact_url": artifact_url,
        "artifact_version": artifact.version,
        "artifact_expires": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "followups": followups,
    }
