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
from jinja2.sandbox import SandboxedEnvironment

from bot.config.repo import RepoConfig
from bot.config.triage import TriageRules
from bot.models import Comment, Issue, RelatedIssue, TimelineEvent, TriageDecision
from bot.packaged import prompts_dir
from bot.triage.quoting import excerpt, fenced, inline
from bot.triage.text import is_maintainer

PROMPTS_DIR = prompts_dir()
SECTIONS = (
    "setup",
    "target_issue",
    "related_issues",
    "existing_prs",
    "analysis",
    "approach",
    "completion",
    "do_not",
    "launch",
)
HEADINGS = {
    "fix": "Fix",
    "implement": "Implement",
    "review-existing-pr": "Review and complete the open PR for",
    "docs": "Fix the documentation of",
}
# The words are found first and the sentence around them is cut out by index, so a long
# text costs one pass (a leading `[^.\n]{0,160}` retried at every position did not).
OUT_OF_SCOPE = re.compile(
    r"\b(?:out of scope|won'?t (?:fix|add|support)|not planned|not going to)\b", re.IGNORECASE
)
REMARK_REACH = 160
BLOB_LINK = re.compile(
    r"https?://[^\s/]{1,100}/[\w.-]{1,100}/[\w.-]{1,100}/blob/[0-9A-Za-z._-]{1,100}/([\w./-]{1,300}?)(?:#L(\d{1,6})(?:-L\d{1,6})?)?(?=[\s)\]>\"']|$)"
)
# Bounded quantifiers and token-boundary lookbehinds keep these linear on hostile text.
CODE_POINTER = re.compile(
    r"(?<![\w.-])(?:~?/)?(?:[\w.-]{1,80}/){1,12}[\w.-]{1,80}\.(?:py|pyx|cu|cpp|cc|c|h|rs|go|js|ts|md|rst|yaml|yml|toml)(?::\d{1,6})?"
    r"|(?<![\w.])[A-Za-z_]\w{0,60}(?:\.[A-Za-z_]\w{0,60}){2,8}(?![\w.])"
    r"|`[A-Za-z_][\w.]{2,80}\(\)?`"
)
LINK_PLACEHOLDER = "<the prompt link from the triage comment or the Slack message>"


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
    issue: Issue
    decision: TriageDecision
    config: RepoConfig
    related: list[RelatedContext] = field(default_factory=list)


@dataclass
class RenderedPrompt:
    text: str
    trimmed: list[str]
    override_errors: list[str]


class Renderer:
    def __init__(self, prompts_dir: Path = PROMPTS_DIR) -> None:
        self._env = _environment(loader=FileSystemLoader(str(prompts_dir)))
        self._sandbox = _environment(SandboxedEnvironment)

    # -- small templates from the repository's config -----------------------------------
    def config_line(self, template: str, **values: Any) -> str:
        """Render one configured line (setup, completion, launch) in the sandbox."""
        try:
            return self._sandbox.from_string(template).render(**values)
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
        text, errors = self._prompt_text(data, related, trimmed)
        # First drop full bodies of the least related issues, then the entries themselves.
        for item in reversed(related):
            if len(text) <= budget:
                break
            if item.full and item.issue is not None:
                item.full = False
                trimmed.append(f"body and comments of #{item.ref.number}")
                text, errors = self._prompt_text(data, related, trimmed)
        while len(text) > budget and related:
            dropped = related.pop()
            trimmed.append(f"#{dropped.ref.number} left out")
            text, errors = self._prompt_text(data, related, trimmed)
        return RenderedPrompt(text=text, trimmed=trimmed, override_errors=errors)

    def _prompt_text(
        self, data: PromptInput, related: list[RelatedContext], trimmed: list[str]
    ) -> tuple[str, list[str]]:
        issue, config = data.issue, data.config
        values = {"number": issue.number, "repo": issue.repo}
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
            "decision": data.decision,
            "heading": HEADINGS[data.decision.mode],
            "setup_commands": [self.config_line(line, **values) for line in config.prompt.setup],
            "test_commands": [
                self.config_line(line, **values) for line in config.prompt.test_commands
            ],
            "completion_steps": [
                self.config_line(line, **values) for line in config.prompt.completion_workflow
            ],
            "launch_command": self.launch_command(
                config, url=LINK_PLACEHOLDER, number=issue.number, repo=issue.repo
            ),
            "related": related,
            "trimmed": trimmed,
            "budget": config.prompt.size_budget,
            "existing_prs": data.decision.existing_prs,
            "cross_references": cross_reference_events(issue),
            "maintainer_remarks": maintainer_remarks(issue, config.triage),
            "code_pointers": code_pointers(issue),
            "out_of_scope": out_of_scope_remarks(issue, config.triage),
            "unavailable_hardware": [
                h for h in data.decision.hardware if h not in config.triage.available_hardware
            ],
        }
        errors: list[str] = []
        sections = []
        for name in SECTIONS:
            override = config.prompt.overrides.get(name)
            if override is not None:
                try:
                    sections.append(self._sandbox.from_string(override).render(**context).strip())
                    continue
                except TemplateError as exc:
                    errors.append(f"prompt.overrides.{name}: {exc}")
            sections.append(
                self._env.get_template(f"sections/{name}.md.j2").render(**context).strip()
            )
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


def marker_hash(body: str) -> str | None:
    match = COMMENT_MARKER.match(body or "")
    return match.group(1) if match else None


def maintainer_remarks(issue: Issue, rules: TriageRules) -> list[Comment]:
    """Comments by maintainers as the repository's config defines them (as the verdict does)."""
    return [
        c
        for c in issue.comments
        if not c.author_is_bot and is_maintainer(c.author, c.author_association, rules)
    ]


def out_of_scope_remarks(issue: Issue, rules: TriageRules) -> list[str]:
    remarks: list[str] = []
    for comment in maintainer_remarks(issue, rules):
        remarks.extend(sentences_around(OUT_OF_SCOPE, comment.body[:20_000]))
    return remarks[:5]


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
        found.append(text[start:end].strip())
    return found


def code_pointers(issue: Issue, limit: int = 15) -> list[str]:
    """File paths, dotted names and functions named in the issue, in order of appearance."""
    seen: dict[str, None] = {}
    texts = [issue.title, issue.body, *(c.body for c in issue.comments)]
    for text in texts:
        text = text[:60_000]
        for link in BLOB_LINK.finditer(text):
            seen.setdefault(link.group(1) + (f":{link.group(2)}" if link.group(2) else ""), None)
        for match in CODE_POINTER.finditer(BLOB_LINK.sub(" ", text)):
            pointer = match.group(0).strip("`")
            if pointer.count(".") > 1 and re.fullmatch(r"[\d.]+", pointer):
                continue  # a version number, not a name
            seen.setdefault(pointer, None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)


def cross_reference_events(issue: Issue) -> list[TimelineEvent]:
    return [e for e in issue.timeline if e.type == "CrossReferencedEvent"]
