"""Detectors for the thread: what maintainers and the reporter said after the issue was filed.

Maintainers (by author_association or the configured list) count fully; commenters whose
association is unknown count `unknown_commenter_trust` of that and never decide a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.github.references import references
from bot.triage.signals import DESIGN_TEXT_RE, LINE_LINK_RE, Finding, quote, repo_path
from bot.triage.text import Part, Prepared, clip, is_word_start

if TYPE_CHECKING:
    from bot.github.trees import RepoTree

# Patterns run over lower-cased prose, without re.IGNORECASE or a leading \b (see text.Part).
# Words that turn a statement into a condition or a hope ("once that is fixed", "see if it works").
_CONDITIONAL_RE = re.compile(
    r"\b(?:once|when|until|after|if|whether|before|hope|see|check|think|sure)\W{1,3}\w{0,20}\W{0,3}\w{0,20}\W{0,3}$"
)

CONFIRMS_RE = re.compile(
    r"i (?:can|could) (?:confirm|reproduce)\b|(?:was|were) able to reproduce\b|i(?:'ve| have)? reproduced\b"
    r"|(?:can|could) reproduce (?:this|it|the)\b|confirm(?:ed)? (?:the|this) (?:bug|issue|problem)\b"
    r"|(?:is|looks like|seems like|seems to be) (?:indeed |definitely |probably )?a bug\b"
    r"|it is (?:probably|indeed|definitely) a bug\b|(?:good|nice) catch\b|you(?:'re| are) (?:right|correct)\b"
    r"|we (?:could|should|need to|can) (?:add|fix|update|change|handle|check|raise)\b|(?:this|it) is a regression\b"
)
CANNOT_REPRODUCE_RE = re.compile(
    r"(?:can't|cannot|couldn't|could not|unable to|not able to|failed to) reproduce\b"
)
INVITES_PR_RE = re.compile(
    r"a (?:pr|pull request|fix|contribution)(?: for this| to fix this)? (?:would be|is) (?:great|welcome|appreciated|nice|very welcome)\b"
    r"|(?:prs?|pull requests|contributions) (?:are|is|would be) (?:very )?welcome\b"
    r"|(?:feel free|happy for you|welcome) to (?:open|submit|send|make|create) (?:a|the) (?:pr|pull request|fix)\b"
    r"|would you (?:like|be willing|be interested|want) to (?:open|submit|contribute|send|make|create)\b"
    r"|happy to (?:review|accept) (?:a|your) (?:pr|pull request|fix|contribution)\b"
    r"|do you want to (?:open|submit|create) a (?:pr|pull request)\b|contributions welcome\b"
)
FIXED_RE = re.compile(
    r"(?:has|have|had) (?:already |now )?been (?:fixed|resolved|addressed)\b"
    r"|(?:is|was|got) (?:already |now )?(?:fixed|resolved)\b"
    r"|fixed (?:in|by|with|via|on) (?:#|https?://|the |this |that |pr\b|main\b|master\b|v?\d)"
    r"|should be (?:fixed|resolved|supported|working) (?:in|by|with|on|now)\b"
    r"|resolved (?:in|by) (?:#|https?://|pr\b|the |this )"
)
CLOSING_RE = re.compile(
    r"(?:i'm|i am|i'll|i will|we're|we are|we'll|let's|going to) clos(?:e|ing)\b"
    r"|(?:can|could|should) be closed\b|clos(?:e|ing) (?:this|the issue|it)\b"
)
# "Closing: ..." / "Close this" at the very start of a comment.
LEADING_CLOSE_RE = re.compile(r"\W{0,3}(?:closing|close|closed)\b")
# "... is out of scope for this issue": a side topic set aside, not the issue ruled out.
SIDE_TOPIC_RE = re.compile(
    r"\W{0,3}(?:(?:for|of|in|here in) (?:this|the current|the present) (?:issue|pr|pull request|thread|discussion|ticket|one)"
    r"|here\b)"
)
OUT_OF_SCOPE_RE = re.compile(
    r"out of (?:the )?scope\b|beyond the scope\b|not planned\b|won'?t (?:fix|support|be supported|add)\b"
    r"|(?:no|not any) plans? to (?:support|add|fix)\b|not (?:going|planning) to (?:support|add|fix)\b"
    r"|do(?:n't| not) (?:plan|intend) to (?:support|add|fix)\b"
)
NOT_A_BUG_RE = re.compile(
    r"(?:is|this is|that is|it's) not a bug\b|(?:is|this is|that is|it's) (?:the )?expected (?:behavior|behaviour)\b"
    r"|works as (?:intended|expected|designed)\b|(?:is|this is) (?:the )?intended (?:behavior|behaviour)\b"
)
WORKAROUND_RE = re.compile(
    r"workaround\b|try (?:to )?(?:add|adding|set|setting|use|using|pass|passing|upgrad\w{1,3}|install\w{0,3}|append\w{0,3})\b"
    r"|you (?:need|have|should|must) (?:to )?(?:pass|set|use|install|upgrade|add|specify)\b"
    r"|please (?:upgrade|update|use|install)\b|upgrad(?:e|ing) to (?:the )?latest\b"
)
DUPLICATE_RE = re.compile(
    r"(?:duplicate (?:of|to)|dupe? of|same (?:issue|problem|bug) as|in favou?r of|tracked (?:in|by|at)"
    r"|already reported (?:in|at))\W{0,10}"
    r"(?:https://github\.com/([\w.-]{1,100}/[\w.-]{1,100})/issues/|([\w.-]{1,100}/[\w.-]{1,100})?#)"
    r"(\d{1,7})\b"
)
INFO_REQUEST_RE = re.compile(
    r"(?:can|could|would) you (?:please |also )?(?:share|provide|post|paste|include|add|give|send|reproduce|run|confirm|tell)\b"
    r"|please (?:share|provide|post|paste|include|add|fill|follow|run)\b"
    r"|do you have (?:the|a|an|any) (?:error|traceback|reproduc|minimal|full|stack|log|code|script|example)"
    r"|(?:minimal|reproducible|self-contained) (?:code|reproduc|example|snippet|script)"
    r"|follow the (?:issue )?template\b|more (?:info|information|details|context)\b"
)
RESOLVED_RE = re.compile(
    r"(?:it|this|that) (?:now )?(?:works|worked|is working)(?: now| for me| fine now)?[ \t]{0,2}(?:[.!,:;)]|$)"
    r"|works? (?:for me|now)\b|(?:problem|issue|error) (?:is |was |has been )?(?:solved|resolved|gone)\b"
    r"|i (?:have |'ve )?(?:solved|fixed|resolved|figured out)\b|my (?:mistake|bad|fault)\b"
    r"|(?:spelling|silly|stupid|dumb) (?:mistake|error)\b|(?:was|were) not (?:updated|installed|upgraded)\b"
    r"|(?:found|figured out|got|see|understand) what (?:was )?the (?:issue|problem)\b|never ?mind\b"
)


@dataclass
class Thread:
    """What the discussion contributes: findings and the issues a maintainer called originals."""

    findings: list[Finding] = field(default_factory=list)
    # Same-repository issues a maintainer named as the original ("duplicate of #N"), in order;
    # the engine keeps the first that exists and is older than this issue.
    duplicate_claims: list[int] = field(default_factory=list)
    # Findings that decide a verdict (maintainer statements, reporter self-resolution).
    decisive: set[str] = field(default_factory=set)


def _leading_close(part: Part) -> re.Match[str] | None:
    return LEADING_CLOSE_RE.match(part.low_prose.lstrip())


def _search(
    regex: re.Pattern[str], part: Part, *, conditional_ok: bool = True
) -> re.Match[str] | None:
    """First word match in lower-cased prose, skipping mere conditions ('once it is fixed')."""
    text = part.low_prose
    for i, match in enumerate(regex.finditer(text)):
        if i >= 20:
            break
        if not is_word_start(text, match.start()):
            continue
        if conditional_ok or not _CONDITIONAL_RE.search(
            text, max(0, match.start() - 40), match.start()
        ):
            return match
    return None


def _points_to_code(part: Part, packages: tuple[str, ...], tree: RepoTree | None) -> str | None:
    link = LINE_LINK_RE.search(part.text)
    if link:
        return quote(part, link)
    span = repo_path(part.prose, packages, tree)
    return f"{part.where}: {clip(span[2])}" if span else None


def _same_repo_duplicate(part: Part, repo: str) -> re.Match[str] | None:
    """A "duplicate of #N" naming an issue of this repository (never `other/repo#N`)."""
    for i, match in enumerate(DUPLICATE_RE.finditer(part.low_prose)):
        if i >= 20:
            break
        named = match.group(1) or match.group(2)
        if named is None or named.lower() == repo.lower():
            return match
    return None


def _out_of_scope(part: Part) -> re.Match[str] | None:
    """The issue itself ruled out, not a side topic "out of scope for this issue"."""
    text = part.low_prose
    for i, match in enumerate(OUT_OF_SCOPE_RE.finditer(text)):
        if i >= 20:
            break
        if is_word_start(text, match.start()) and not SIDE_TOPIC_RE.match(text, match.end()):
            return match
    return None


def _answered_later(prepared: Prepared, index: int, issue_author: str | None) -> bool:
    for later in prepared.comments[index + 1 :]:
        if issue_author is None and later.role in ("unknown", "other", "author"):
            return True
        if later.role == "author":
            return True
    return False


def thread_findings(prepared: Prepared, repo: str, issue_author: str | None) -> Thread:
    thread = Thread()
    seen: set[str] = set()

    def add(
        name: str, part: Part, match: re.Match[str] | None, trust: float, decisive: bool
    ) -> None:
        if name in seen or match is None:
            return
        seen.add(name)
        thread.findings.append(Finding(name, quote(part, match), trust))
        if decisive:
            thread.decisive.add(name)

    for said in prepared.comments:
        part = said.part
        if said.role in ("maintainer", "unknown"):
            decisive = said.role == "maintainer"
            trust = said.trust
            duplicate = _same_repo_duplicate(part, repo)
            if duplicate and decisive:
                thread.duplicate_claims.append(int(duplicate.group(3)))
            add("duplicate", part, duplicate, trust, decisive)
            add("maintainer_confirms", part, _search(CONFIRMS_RE, part), trust, decisive)
            add("cannot_reproduce", part, _search(CANNOT_REPRODUCE_RE, part), trust, False)
            add("maintainer_invites_pr", part, _search(INVITES_PR_RE, part), trust, decisive)
            pointer = _points_to_code(part, prepared.package_names, prepared.tree)
            if pointer and "maintainer_points_to_code" not in seen:
                seen.add("maintainer_points_to_code")
                thread.findings.append(Finding("maintainer_points_to_code", pointer, trust))
            add("fixed_claim", part, _search(FIXED_RE, part, conditional_ok=False), trust, decisive)
            add("out_of_scope", part, _out_of_scope(part), trust, decisive)
            add(
                "not_a_bug",
                part,
                _search(NOT_A_BUG_RE, part, conditional_ok=False),
                trust,
                decisive,
            )
            add("workaround_suggested", part, _search(WORKAROUND_RE, part), trust, False)
            # A maintainer (or a commenter of unknown standing) asking for a design or a
            # decision: it can only hold an issue back, so it counts either way.
            add("design_discussion", part, _search(DESIGN_TEXT_RE, part), trust, True)
            # Also beside a "duplicate of #N": when #N cannot be checked, the closing stands.
            closing = _leading_close(part) or _search(CLOSING_RE, part, conditional_ok=False)
            add("maintainer_closing", part, closing, trust, decisive)
            request = _search(INFO_REQUEST_RE, part)
            if request and not _answered_later(prepared, said.index, issue_author):
                add("info_requested", part, request, trust, decisive)
        elif said.role == "author":
            resolved = _leading_close(part) or _search(RESOLVED_RE, part, conditional_ok=False)
            add("reporter_resolved", part, resolved, 1.0, True)
    return thread


def labelled_duplicate_target(prepared: Prepared, repo: str, own_number: int) -> list[int]:
    """With a Duplicate label, the other issues of this repository the thread references."""
    found: dict[int, None] = {}
    for part in [prepared.body, *(s.part for s in prepared.comments)]:
        for ref in references(part.prose):
            same_repo = ref.repo is None or ref.repo.lower() == repo.lower()
            if same_repo and ref.number != own_number:
                found.setdefault(ref.number)
    return list(found)
