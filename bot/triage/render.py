"""Rendering the agent prompt file and the triage comment from templates in `prompts/`.

Templates use StrictUndefined, so a missing value is an error rather than a silent gap.
Repository overrides are rendered in a sandbox with the same filters. Untrusted text
only reaches the output through the quoting filters of `bot.triage.quoting`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from bot.config.repo import DEFAULT_COMPLETION, RepoConfig
from bot.config.triage import TriageRules
from bot.models import (
    Comment,
    ExistingPR,
    Issue,
    Mode,
    RelatedIssue,
    TimelineEvent,
    TriageDecision,
)
from bot.packaged import prompts_dir
from bot.triage.quoting import excerpt, fenced, inline
from bot.triage.sandbox import LimitedSandbox, render_limited
from bot.triage.source import PullContext, SourceContext
from bot.triage.text import is_maintainer

PROMPTS_DIR = prompts_dir()
SECTIONS = (
    "setup",  # its last part is sections/hardware.md.j2
    "target_issue",
    "related_issues",
    "existing_prs",
    "analysis",
    "approach",
    "completion",
    "do_not",
    "launch",
)
# Mode -> (title prefix, the task line under it). The mode frames the whole prompt.
FRAMING = {
    "fix": (
        "Fix",
        "Find the cause of the bug in #{n}, fix it, and open a pull request that fixes it.",
    ),
    "implement": (
        "Implement",
        "Implement the scoped change #{n} asks for, following the surrounding code, and open a"
        " pull request for it.",
    ),
    "docs": ("Fix the documentation of", "Correct the documentation #{n} is about."),
    "review-existing-pr": (
        "Review and complete PR #{pr} for",
        "Pull request #{pr} already addresses #{n}: review, test and complete it before writing"
        " anything new.",
    ),
    "verify-close": (
        "Verify and report on",
        "#{n} may already be resolved ({why}). Verify on the default branch whether the problem"
        " still occurs and report what you find; do not write a fix for a problem you cannot"
        " reproduce.",
    ),
    "investigate": (
        "Investigate",
        "#{n} needs hardware this machine does not have ({hardware}). Find out what can be"
        " checked without it and report; do not claim a fix you could not run.",
    ),
}
REFERENCE_ONLY_MODES = frozenset({"review-existing-pr", "verify-close", "investigate"})
# The words are found first and the sentence around them is cut out by index, so a long
# text costs one pass (a leading `[^.\n]{0,200}` retried at every position would not).
SCOPE_LIMIT = re.compile(
    r"\b(?:out[ -]of[ -]scope|separate (?:issue|pr|pull request)|different issue"
    r"|(?:do not|don'?t|should not|shouldn'?t) (?:change|touch|modify|add|remove|refactor)"
    r"|not (?:part of|for) this (?:issue|pr|fix)|won'?t (?:fix|add|support)|not planned)\b",
    re.IGNORECASE,
)
REMARK_REACH = 200
RESOLUTION = re.compile(
    r"\b(?:fix(?:ed)? (?:in|by)|resolved|closing|closed (?:by|in|via)|merged|released in"
    r"|should be fixed|works now|was fixed)\b|#\d{1,7}",
    re.IGNORECASE,
)
CUDA_IN_CODE = re.compile(
    r"\.cuda\(\)|device\s{0,3}=\s{0,3}[\'\"]cuda|\.to\(\s{0,3}[\'\"]cuda|torch\.cuda\.\w{1,40}"
    r"|CUDA_VISIBLE_DEVICES|[\'\"]cuda:\d[\'\"]"
)
LOST_REFERENCE = re.compile(
    r"\b(?:fix(?:es)?|close[sd]?|resolve[sd]?|refs?|referenc\w{0,5}|says)\W{0,4}$", re.IGNORECASE
)
LINK_PLACEHOLDER = "<the prompt link from the triage comment or the Slack message>"


# A comment of the target issue is never cut below this many characters to fit the budget.
COMMENT_FLOOR = 500


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n… (cut to fit the prompt budget)"


class PromptTemplateError(ValueError):
    """A repository override is not a valid template (the default is used instead)."""


def _day(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value else "unknown date"


def _role(association: str | None) -> str:
    """A comment author's role, shown only when it carries weight."""
    if not association or association in (
        "NONE",
        "CONTRIBUTOR",
        "FIRST_TIME_CONTRIBUTOR",
        "FIRST_TIMER",
    ):
        return ""
    return f" ({association.lower()})"


def _environment(
    cls: type[Environment] = Environment, loader: FileSystemLoader | None = None
) -> Environment:
    env = cls(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fenced=fenced, inline=inline, excerpt=excerpt, day=_day, role=_role)
    return env


@dataclass
class RelatedContext:
    ref: RelatedIssue
    issue: Issue | None
    why: str
    full: bool = True


@dataclass
class PromptInput:
    """Everything the prompt shows; fetched beforehand, rendered without I/O."""

    issue: Issue
    decision: TriageDecision
    config: RepoConfig
    related: list[RelatedContext] = field(default_factory=list)
    source: SourceContext = field(default_factory=SourceContext)
    pulls: list[PullContext] = field(default_factory=list)


@dataclass
class RenderedPrompt:
    text: str
    trimmed: list[str]
    override_errors: list[str]


@dataclass(frozen=True)
class Remark:
    author: str
    day: str
    text: str
    role_known: bool = True


@dataclass(frozen=True)
class HardwareNeed:
    name: str
    evidence: str
    available: bool


class Renderer:
    def __init__(self, prompts_dir: Path = PROMPTS_DIR) -> None:
        self._env = _environment(loader=FileSystemLoader(str(prompts_dir)))
        self._sandbox = _environment(LimitedSandbox)

    # -- small templates from the repository's config -----------------------------------
    def config_line(self, template: str, **values: Any) -> str:
        """Render one configured line (setup, completion, launch) in the sandbox."""
        try:
            return render_limited(self._sandbox.from_string(template), values)
        except TemplateError as exc:
            raise PromptTemplateError(f"{template[:60]!r}: {exc}") from exc

    def launch_command(self, config: RepoConfig, *, url: str, number: int, repo: str) -> str:
        return self.config_line(config.prompt.launch_command, url=url, number=number, repo=repo)

    # -- the prompt file --------------------------------------------------------------------
    def prompt(self, data: PromptInput) -> RenderedPrompt:
        """Render within the size budget: related issues are trimmed first, never the target."""
        budget = data.config.prompt.size_budget
        related = list(data.related)
        trimmed: list[str] = []
        context, errors = self._context(data)
        text, errors = self._prompt_text(data, context, related, trimmed, errors)
        # First drop full bodies of the least related issues, then the entries themselves.
        for item in reversed(related):
            if len(text) <= budget:
                break
            if item.full and item.issue is not None:
                item.full = False
                trimmed.append(f"body and comments of #{item.ref.number}")
                text, errors = self._prompt_text(data, context, related, trimmed, errors)
        while len(text) > budget and related:
            dropped = related.pop()
            trimmed.append(f"#{dropped.ref.number} left out")
            text, errors = self._prompt_text(data, context, related, trimmed, errors)
        # Then the target's own comments (anyone can write them): each is cut shorter, and
        # at the floor the oldest go, so outsiders' comments cannot outgrow the budget.
        issue = data.issue
        cap = max((len(c.body) for c in issue.comments), default=0)
        comments = list(issue.comments)
        while len(text) > budget and (cap > COMMENT_FLOOR or len(comments) > 1):
            if cap > COMMENT_FLOOR:
                cap = max(COMMENT_FLOOR, cap // 2)
            else:
                comments.pop(0)
            note = f"comments on #{issue.number} cut to {cap} characters" + (
                f", the {len(issue.comments) - len(comments)} oldest left out"
                if len(comments) < len(issue.comments)
                else ""
            )
            trimmed[:] = [t for t in trimmed if not t.startswith(f"comments on #{issue.number}")]
            trimmed.append(note)
            shorter = [c.model_copy(update={"body": _cut(c.body, cap)}) for c in comments]
            context = {**context, "issue": issue.model_copy(update={"comments": shorter})}
            text, errors = self._prompt_text(data, context, related, trimmed, errors)
        return RenderedPrompt(text=text, trimmed=trimmed, override_errors=errors)

    def _context(self, data: PromptInput) -> tuple[dict[str, Any], list[str]]:
        """The template values that do not depend on trimming (config lines rendered once)."""
        issue, config, decision, source = data.issue, data.config, data.decision, data.source
        prompt = config.prompt
        errors: list[str] = []
        mode = prompt_mode(decision)
        pulls = {p.number: p for p in data.pulls}
        target_pr = _target_pr(decision, mode)
        pull = pulls.get(target_pr.number) if target_pr else None
        values: dict[str, Any] = {"number": issue.number, "repo": issue.repo}
        branch = self._configured(prompt.branch, "prompt.branch", values, errors) or (
            f"fix/issue-{issue.number}"
        )
        values["branch"] = branch
        setup = [
            line
            for i, template in enumerate(prompt.setup)
            if (line := self._configured(template, f"prompt.setup[{i}]", values, errors))
        ]
        if mode == "review-existing-pr" and target_pr is not None:
            setup.append(f"gh pr checkout {target_pr.number} --branch {branch} --force")
        install = prompt.install or source.install
        if install:
            setup.append(install)
        tests = [
            line
            for i, template in enumerate(prompt.test_commands)
            if (line := self._configured(template, f"prompt.test_commands[{i}]", values, errors))
        ] or [t.command() for t in source.tests]
        test_command = tests[0] if tests else "pytest <the test file that covers your change> -v"
        hardware = hardware_needs(issue, decision, config.triage.available_hardware)
        closing = f"{'Refs' if mode in REFERENCE_ONLY_MODES else 'Fixes'} #{issue.number}"
        prefix, task = FRAMING[mode]
        why_verify = (
            f"merged PR #{target_pr.number}"
            if target_pr is not None and target_pr.state == "merged"
            else "proposed for closing"
        )
        fill = {
            "n": issue.number,
            "pr": target_pr.number if target_pr else "?",
            "why": why_verify,
            "hardware": ", ".join(h.name for h in hardware if not h.available) or "unknown",
        }
        completion = self._completion(
            data,
            {
                **values,
                "test_command": test_command,
                "closing": closing,
                "commit_message": {
                    "review-existing-pr": f"Complete the fix from PR #{fill['pr']}",
                    "verify-close": "Add a regression test",
                    "investigate": "Report findings",
                }.get(mode, "Fix <brief description>"),
            },
            errors,
        )
        context: dict[str, Any] = {
            "repo": issue.repo,
            "number": issue.number,
            "issue": issue,
            "reactions": ", ".join(
                f"{name} {count}" for name, count in sorted(issue.reactions.items())
            ),
            "issue_url": inline(
                issue.url or f"https://github.com/{issue.repo}/issues/{issue.number}", 300
            ),
            "decision": decision,
            "mode": mode,
            "heading": prefix.format(**fill),
            "task": task.format(**fill),
            "branch": branch,
            "setup_commands": setup,
            "build_docs": prompt.build_docs or source.docs,
            "target_pr": target_pr,
            "target_pull": pull,
            "pulls": pulls,
            "source": source,
            "test_commands": tests,
            "full_suite": prompt.full_suite,
            "closing": closing,
            "completion_steps": completion,
            "launch_command": self.launch_command(
                config, url=LINK_PLACEHOLDER, number=issue.number, repo=issue.repo
            ),
            "budget": prompt.size_budget,
            "existing_prs": decision.existing_prs,
            "cross_references": cross_reference_events(issue),
            "maintainer_remarks": maintainer_remarks(issue, config.triage),
            "out_of_scope": scope_limits(issue, config.triage),
            "patterns": signature_patterns(decision.related),
            "hardware": hardware,
            "available_hardware": config.triage.available_hardware,
            "unavailable_hardware": [h.name for h in hardware if not h.available],
            "resolution": resolution_comment,
        }
        return context, errors

    def _configured(
        self, template: str, where: str, values: dict[str, Any], errors: list[str]
    ) -> str:
        try:
            return self.config_line(template, **values).strip()
        except PromptTemplateError as exc:
            errors.append(f"{where}: {exc}")
            return ""

    def _completion(
        self, data: PromptInput, values: dict[str, Any], errors: list[str]
    ) -> list[str]:
        """The configured workflow; refused (built-in used) when a step lost its `#N`."""
        prompt = data.config.prompt
        steps = self._render_steps(prompt.completion_workflow, values, errors)
        lost = [s for s in steps if LOST_REFERENCE.search(s.rstrip("`'\". "))]
        number = f"#{values['number']}"
        if lost or not any(number in s for s in steps):
            problem = (
                f"step {excerpt(lost[0], 80)!r} ends where a reference should be"
                if lost
                else f"no step names {number}"
            )
            errors.append(
                f"prompt.completion_workflow: {problem} (YAML reads ` #` as the start of a"
                " comment: quote the value); the built-in workflow was used"
            )
            steps = self._render_steps(DEFAULT_COMPLETION, values, errors)
        if prompt.notify:
            note = self._configured(prompt.notify, "prompt.notify", values, errors)
            if note:
                steps.append(
                    "**Notify** the team (which issue, a one-line summary, the PR URL):\n\n    "
                    + note
                )
        return steps

    def _render_steps(
        self, templates: list[str], values: dict[str, Any], errors: list[str]
    ) -> list[str]:
        return [
            step
            for i, template in enumerate(templates)
            if (
                step := self._configured(
                    template, f"prompt.completion_workflow[{i}]", values, errors
                )
            )
        ]

    def _prompt_text(
        self,
        data: PromptInput,
        context: dict[str, Any],
        related: list[RelatedContext],
        trimmed: list[str],
        config_errors: list[str],
    ) -> tuple[str, list[str]]:
        config = data.config
        context = {**context, "related": related, "trimmed": trimmed}
        errors = [e for e in config_errors if not e.startswith("prompt.overrides.")]
        sections = []
        for name in SECTIONS:
            override = config.prompt.overrides.get(name)
            if override is not None:
                try:
                    sections.append(
                        render_limited(self._sandbox.from_string(override), context).strip()
                    )
                    continue
                except TemplateError as exc:
                    errors.append(f"prompt.overrides.{name}: {exc}")
            rendered = self._env.get_template(f"sections/{name}.md.j2").render(**context).strip()
            if rendered:
                sections.append(rendered)
        text = self._env.get_template("prompt.md.j2").render(sections=sections, **context)
        return text, errors

    # -- the triage comment -----------------------------------------------------------------
    def comment(self, context: dict[str, Any]) -> str:
        """The triage comment with its hidden marker carrying a hash of the visible text."""
        visible = self._env.get_template("comment.md.j2").render(marker="", **context).strip()
        digest = hashlib.sha256(visible.encode()).hexdigest()[:16]
        return f"{comment_marker(digest)}\n{visible}\n"


COMMENT_MARKER_PREFIX = "<!-- agent-dispatch:triage"
COMMENT_MARKER = re.compile(r"^<!-- agent-dispatch:triage hash=([0-9a-f]{16}) -->")


def comment_marker(digest: str) -> str:
    return f"{COMMENT_MARKER_PREFIX} hash={digest} -->"


def prompt_mode(decision: TriageDecision) -> Mode:
    """The framing of the prompt: a verdict that rules out a fix rules out a fix prompt."""
    if decision.mode in ("verify-close", "investigate"):
        return decision.mode
    if decision.verdict == "close-candidate":
        return "verify-close"
    if decision.verdict == "needs-hardware":
        return "investigate"
    return decision.mode


def _target_pr(decision: TriageDecision, mode: Mode) -> ExistingPR | None:
    wanted = {"review-existing-pr": "open", "verify-close": "merged"}.get(mode)
    return next((pr for pr in decision.existing_prs if pr.state == wanted), None)


def _remark(comment: Comment, text: str, role_known: bool = True) -> Remark:
    return Remark(comment.author or "unknown", _day(comment.created_at), text, role_known)


def maintainer_remarks(issue: Issue, rules: TriageRules) -> list[Comment]:
    """Comments by maintainers as the repository's config defines them (as the verdict does)."""
    return [
        c
        for c in issue.comments
        if not c.author_is_bot and is_maintainer(c.author, c.author_association, rules)
    ]


def scope_limits(issue: Issue, rules: TriageRules, limit: int = 6) -> list[Remark]:
    """Scope limits stated in the thread by maintainers (or commenters of unknown role)."""
    remarks: list[Remark] = []
    for comment in issue.comments:
        if comment.author_is_bot:
            continue
        maintainer = is_maintainer(comment.author, comment.author_association, rules)
        unknown = comment.author_association is None and comment.author != issue.author
        if not (maintainer or unknown):
            continue
        for found in sentences_around(SCOPE_LIMIT, comment.body[:20_000]):
            sentence = " ".join(found.split()).lstrip("-*> ")
            remarks.append(_remark(comment, sentence, role_known=maintainer))
            if len(remarks) >= limit:
                return remarks
    return remarks


def sentences_around(words: re.Pattern[str], text: str) -> list[str]:
    """Each match with up to REMARK_REACH characters of its sentence on either side."""
    found: list[str] = []
    end = 0
    for match in words.finditer(text):
        if match.start() < end:
            continue
        low = max(end, match.start() - REMARK_REACH)
        start = max(text.rfind(".", low, match.start()), text.rfind("\n", low, match.start()))
        start = low if start < 0 else start + 1
        high = min(len(text), match.end() + REMARK_REACH)
        stops = (text.find(".", match.end(), high), text.find("\n", match.end(), high))
        end = min((i for i in stops if i >= 0), default=high)
        found.append(text[start : end + 1 if end < len(text) and text[end] == "." else end])
    return found


def resolution_comment(issue: Issue | None) -> Comment | None:
    """The comment that resolved a closed issue: the last one that says how, else the last."""
    if issue is None or not issue.comments:
        return None
    human = [c for c in issue.comments if not c.author_is_bot] or issue.comments
    return next((c for c in reversed(human) if RESOLUTION.search(c.body[:5_000])), human[-1])


def signature_patterns(related: list[RelatedIssue]) -> list[tuple[str, list[int]]]:
    """Open issues that share an error signature with this one, grouped by the signature.

    The related search names shared signatures `msg:<Error>: <message words>` (an error
    line) and `exc:<Error>` (an exception type); an error line is the stronger evidence.
    """
    groups: dict[str, list[int]] = {}
    for ref in related:
        if ref.state != "open":
            continue
        shared = [t for t in ref.matched if t.startswith("msg:")] or [
            t for t in ref.matched if t.startswith("exc:")
        ]
        if shared:
            groups.setdefault(shared[0].split(":", 1)[1], []).append(ref.number)
    return list(groups.items())[:5]


def hardware_needs(
    issue: Issue, decision: TriageDecision, available: list[str]
) -> list[HardwareNeed]:
    """What the issue needs (triage's hardware classes, CUDA from the code it shows)."""
    have = {h.lower() for h in available}
    needs: dict[str, str] = {}
    evidence = {s.name: s.evidence for s in decision.signals}
    for name in decision.hardware:
        needs[name] = evidence.get("hardware_required", "") if name.lower() not in have else ""
    for text in [issue.body, *(c.body for c in issue.comments)]:
        match = CUDA_IN_CODE.search(text[:60_000])
        # Under ROCm, PyTorch's `.cuda()` is the AMD GPU: not a separate CUDA need.
        if match and "cuda" not in needs and "rocm" not in needs:
            needs["cuda"] = f"the issue's code uses {match.group(0)}"
    return [
        HardwareNeed(name, needs[name] or "named in the issue", name.lower() in have)
        for name in needs
    ]


def cross_reference_events(issue: Issue) -> list[TimelineEvent]:
    return [e for e in issue.timeline if e.type == "CrossReferencedEvent"]
