"""Detectors for the thread: what maintainers and the reporter said after the issue was filed.

Maintainers (by author_association or the configured list) count fully; commenters whose
association is unknown count `unknown_commenter_trust` of that and never decide a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.github.references import bare_numbers, references
from bot.models import ExistingPR, PRState
from bot.triage.signals import LINE_LINK_RE, Finding, quote, repo_path
from bot.triage.text import Part, Prepared, SaidBy, is_word_start

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
    r"|already reported (?:in|at))\W{0,10}(?:https://github\.com/[\w.-]{1,100}/[\w.-]{1,100}/issues/|#)(\d{1,7})\b"
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
PR_URL_RE = re.compile(r"github\.com/([\w.-]{1,100}/[\w.-]{1,100})/pull/(\d{1,7})")
PR_WORD_RE = re.compile(r"\b(?:PR|pull request)\b", re.I)
MERGED_RE = re.compile(
    r"\b(?:has been|have been|was|already|got|been|is|recently) merged\b|\bmerged (?:recently|already)\b|\bfixed (?:by|in)\b",
    re.I,
)
# Sentence ends: '.', '!' or '?' before white space (not the dots of a URL), or a line break.
SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n")
MAX_PR_TEXT = 4_000


@dataclass
class Thread:
    """What the discussion contributes: findings, PRs mentioned, a duplicate target."""

    findings: list[Finding] = field(default_factory=list)
    mentioned_prs: list[ExistingPR] = field(default_factory=list)
    duplicate_of: int | None = None
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


def _points_to_code(part: Part, packages: tuple[str, ...]) -> str | None:
    link = LINE_LINK_RE.search(part.text)
    if link:
        return quote(part, link)
    span = repo_path(part.prose, packages)
    return f"{part.where}: {part.prose[span[0] : span[1]][-150:]}" if span else None


def _mentioned_prs(said: SaidBy, repo: str) -> list[ExistingPR]:
    """PRs a comment names, merged when the sentence says so ('fixed by', 'has been merged')."""
    found: dict[int, ExistingPR] = {}
    text = said.part.text
    if "/pull/" not in text and not PR_WORD_RE.search(text):
        return []
    for sentence in SENTENCE_SPLIT_RE.split(text[:MAX_PR_TEXT]):
        numbers: list[tuple[int, str | None]] = [
            (int(m.group(2)), f"https://github.com/{m.group(1)}/pull/{m.group(2)}")
            for m in PR_URL_RE.finditer(sentence)
            if m.group(1).lower() == repo.lower()
        ]
        if PR_WORD_RE.search(sentence):
            numbers += [(n, None) for n in bare_numbers(sentence)]
        if not numbers:
            continue
        state: PRState = "merged" if MERGED_RE.search(sentence) else "open"
        for number, url in numbers:
            found.setdefault(
                number,
                ExistingPR(
                    number=number,
                    state=state,
                    url=url or f"https://github.com/{repo}/pull/{number}",
                    repo=repo,
                    found_by="comment",
                ),
            )
    return list(found.values())


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
            duplicate = DUPLICATE_RE.search(part.low_prose)
            if duplicate and decisive and thread.duplicate_of is None:
                thread.duplicate_of = int(duplicate.group(1))
            add("duplicate", part, duplicate, trust, decisive)
            add("maintainer_confirms", part, _search(CONFIRMS_RE, part), trust, decisive)
            add("cannot_reproduce", part, _search(CANNOT_REPRODUCE_RE, part), trust, False)
            add("maintainer_invites_pr", part, _search(INVITES_PR_RE, part), trust, decisive)
            pointer = _points_to_code(part, prepared.package_names)
            if pointer and "maintainer_points_to_code" not in seen:
                seen.add("maintainer_points_to_code")
                thread.findings.append(Finding("maintainer_points_to_code", pointer, trust))
            add("fixed_claim", part, _search(FIXED_RE, part, conditional_ok=False), trust, decisive)
            add("out_of_scope", part, _search(OUT_OF_SCOPE_RE, part), trust, decisive)
            add(
                "not_a_bug",
                part,
                _search(NOT_A_BUG_RE, part, conditional_ok=False),
                trust,
                decisive,
            )
            add("workaround_suggested", part, _search(WORKAROUND_RE, part), trust, False)
            if not duplicate:
                closing = _leading_close(part) or _search(CLOSING_RE, part, conditional_ok=False)
                add("maintainer_closing", part, closing, trust, decisive)
            request = _search(INFO_REQUEST_RE, part)
            if request and not _answered_later(prepared, said.index, issue_author):
                add("info_requested", part, request, trust, decisive)
        elif said.role == "author":
            resolved = _leading_close(part) or _search(RESOLVED_RE, part, conditional_ok=False)
            add("reporter_resolved", part, resolved, 1.0, True)
        for pr in _mentioned_prs(said, repo):
            if all(pr.number != known.number for known in thread.mentioned_prs):
                thread.mentioned_prs.append(pr)
    return thread


def labelled_duplicate_target(prepared: Prepared, own_number: int) -> int | None:
    """With a Duplicate label, the first other issue the thread references."""
    for part in [prepared.body, *(s.part for s in prepared.comments)]:
        for ref in references(part.prose):
            if ref.number != own_number:
                return ref.number
    return None
