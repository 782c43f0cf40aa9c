"""Issue text split into the parts the detectors read: prose, code, who said what.

Issue text is hostile input: it is capped before any regex sees it, and every pattern in
the triage package is free of nested quantifiers so that scanning stays linear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bot.config.triage import TriageRules
from bot.models import Comment, Issue

if TYPE_CHECKING:
    from bot.github.trees import RepoTree

Role = Literal["maintainer", "author", "unknown", "other"]

EVIDENCE_CHARS = 160
WORD_REACH = 40  # how far a quote may widen to reach a word boundary (hostile long tokens)
_FENCE_RE = re.compile(r"^\s{0,3}(?:`{3,}|~{3,})")
_HTML_TAG_RE = re.compile(r"<[^<>\n]{0,300}>")
_URL_RE = re.compile(r"https?://[^\s)\]>\"']{1,500}")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]{1,30}")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s")
_CHECKBOX_RE = re.compile(r"^\s{0,6}[-*]\s\[[ xX]\]")
# Log and traceback lines are not prose even when they are not fenced.
_LOG_LINE_RE = re.compile(
    r"^\s{4}|^\s{0,8}(?:File |-{2,}>|\d{1,5}\s{2}|at |\[rank\d)|Traceback \(|"
    r"\b(?:ERROR|WARNING|INFO|DEBUG)\b|^\s{0,4}\(\w{1,40} pid="
)
_BOT_SUFFIX = "[bot]"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
MAX_DESCRIPTION_LINES = 400


def lower(text: str) -> str:
    """ASCII lower case: same length as the input, so match offsets stay valid."""
    return text.translate(_ASCII_LOWER)


@dataclass(frozen=True)
class Part:
    """One piece of text with where it came from, for evidence quotes.

    Patterns run over the lower-cased copies and are compiled case-sensitively: with
    re.IGNORECASE or a leading \\b the regex engine cannot skip ahead and is ~50x slower.
    """

    where: str  # "title", "body", "comment by @x"
    text: str
    code: str = ""  # fenced blocks only
    prose: str = ""  # outside fences, without HTML tags
    low: str = ""  # lower(text)
    low_prose: str = ""  # lower(prose)


def is_word_start(text: str, start: int) -> bool:
    """No letter, digit, '_' or '/' just before: 'python3.8' in a path is not a version."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "_/")


def find_word(
    regex: re.Pattern[str], text: str, start: int = 0, end: int | None = None
) -> re.Match[str] | None:
    """First match of `regex` that starts a word (the \\b a fast pattern cannot lead with)."""
    for match in regex.finditer(text, start, len(text) if end is None else end):
        if is_word_start(text, match.start()):
            return match
    return None


@dataclass(frozen=True)
class SaidBy:
    """A comment reduced to what the rules need."""

    index: int
    author: str | None
    role: Role
    trust: float
    part: Part


@dataclass
class Prepared:
    title: Part
    body: Part
    reporter: list[Part] = field(default_factory=list)  # issue author's comments
    comments: list[SaidBy] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # normalised
    author_is_maintainer: bool = False
    package_names: tuple[str, ...] = ()
    # The default branch's tree, when known: code pointers must be paths it has.
    tree: RepoTree | None = None

    @property
    def issue_text(self) -> list[Part]:
        """What the reporter wrote: title, body and their own comments."""
        return [self.title, self.body, *self.reporter]


def normalise_label(name: str) -> str:
    lowered = re.sub(r"[-_:/]", " ", name.lower())
    return " ".join(re.sub(r"[^a-z0-9' ]", "", lowered).split())


def cap(text: str, limit: int) -> str:
    """Head and tail of long text: errors usually sit at the end of a pasted log."""
    if len(text) <= limit:
        return text
    tail = limit // 5
    return text[: limit - tail] + "\n[...]\n" + text[-tail:]


def compact_blocks(text: str, head: int = 40, tail: int = 15) -> str:
    """Shorten long fenced blocks (environment dumps, logs) so the prose after them survives the cap."""
    out: list[str] = []
    block: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.lstrip(" ")[:3] in ("```", "~~~"):
            if inside:
                out += (
                    block if len(block) <= head + tail else [*block[:head], "[...]", *block[-tail:]]
                )
                block = []
            out.append(line)
            inside = not inside
        elif inside:
            block.append(line)
        else:
            out.append(line)
    return "\n".join(out + block)


def split_code(text: str) -> tuple[str, str]:
    """(fenced code, prose) of markdown text; an unclosed fence runs to the end."""
    code: list[str] = []
    prose: list[str] = []
    inside = False
    for line in text.splitlines():
        if _FENCE_RE.match(line):
            inside = not inside
            continue
        (code if inside else prose).append(line)
    return "\n".join(code), _HTML_TAG_RE.sub(" ", "\n".join(prose))


def make_part(where: str, text: str) -> Part:
    code, prose = split_code(text)
    return Part(
        where=where, text=text, code=code, prose=prose, low=lower(text), low_prose=lower(prose)
    )


def strip_quotes(text: str) -> str:
    """Drop quoted lines ('> ...'): in a comment they are someone else's words."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def description_words(parts: list[Part], enough: int) -> int:
    """Prose words a human wrote (no code, logs, URLs, checkboxes or template headings), up to `enough`."""
    count = 0
    for part in parts:
        if count >= enough:
            break
        for line in part.prose.splitlines()[:MAX_DESCRIPTION_LINES]:
            if _CHECKBOX_RE.match(line) or _LOG_LINE_RE.search(line):
                continue
            words = _WORD_RE.findall(_URL_RE.sub(" ", line))
            if _HEADING_RE.match(line) and len(words) <= 4:
                continue  # template headings such as "### System Info"
            count += len(words)
            if count >= enough:
                break
    return count


def snippet(part: Part, start: int, end: int) -> str:
    """A short quote around text[start:end] of a part, prefixed by where it is from.

    The quote starts and ends at a word or line boundary: never mid-word.
    """
    text = part.text
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    if line_end == -1:
        line_end = len(text)
    lo = max(line_start, start - 60)
    if lo > line_start and not text[lo - 1].isspace():
        # Forward to the next word; when the match's own word starts earlier, back to it.
        space = _next_space(text, lo, start)
        if space is not None:
            lo = space + 1
        else:
            lo = _word_start(text, start, max(line_start, start - WORD_REACH))
    hi = min(line_end, max(end, lo) + 100)
    if hi < line_end and not text[hi].isspace():
        # Back to the end of the previous word; when the match ends mid-word, on to its end.
        space = text.rfind(" ", end, hi)
        hi = (
            space if space != -1 else _word_end(text, max(end, lo), min(line_end, end + WORD_REACH))
        )
    quote = " ".join(text[lo:hi].split())
    if len(quote) > EVIDENCE_CHARS:
        cut = quote.rfind(" ", 0, EVIDENCE_CHARS - 3)
        quote = quote[: cut if cut > EVIDENCE_CHARS // 2 else EVIDENCE_CHARS - 3] + "..."
    return f"{part.where}: {quote}"[:200]


def clip(text: str, limit: int = 150) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit - 3)
    return flat[: cut if cut > limit // 2 else limit - 3] + "..."


def _word_start(text: str, at: int, floor: int) -> int:
    while at > floor and not text[at - 1].isspace():
        at -= 1
    return at


def _word_end(text: str, at: int, ceiling: int) -> int:
    while at < ceiling and not text[at].isspace():
        at += 1
    return at


def _next_space(text: str, lo: int, hi: int) -> int | None:
    for i in range(lo, hi):
        if text[i].isspace():
            return i
    return None


def _is_bot(comment: Comment) -> bool:
    return comment.author_is_bot or (comment.author or "").lower().endswith(_BOT_SUFFIX)


def is_maintainer(login: str | None, association: str | None, rules: TriageRules) -> bool:
    if login and login.lower() in {m.lower() for m in rules.maintainers}:
        return True
    return association is not None and association.upper() in {
        a.upper() for a in rules.maintainer_associations
    }


def _role(comment: Comment, issue: Issue, rules: TriageRules) -> tuple[Role, float]:
    if is_maintainer(comment.author, comment.author_association, rules):
        return "maintainer", 1.0
    if issue.author and comment.author and comment.author.lower() == issue.author.lower():
        return "author", 0.0
    if comment.author_association is None:
        return "unknown", rules.unknown_commenter_trust
    return "other", 0.0


def _comments(issue: Issue, rules: TriageRules) -> list[Comment]:
    human = [c for c in issue.comments if not _is_bot(c)]
    if len(human) <= rules.max_comments:
        return human
    head = rules.max_comments // 4
    return human[:head] + human[len(human) - (rules.max_comments - head) :]


def prepare(issue: Issue, rules: TriageRules, tree: RepoTree | None = None) -> Prepared:
    said: list[SaidBy] = []
    reporter: list[Part] = []
    for index, comment in enumerate(_comments(issue, rules)):
        role, trust = _role(comment, issue, rules)
        text = strip_quotes(cap(comment.body or "", rules.max_comment_chars))
        part = make_part(f"comment by @{comment.author or 'unknown'}", text)
        said.append(SaidBy(index=index, author=comment.author, role=role, trust=trust, part=part))
        if role == "author":
            reporter.append(part)
    # Package names: configured, else the tree's packages, else (no tree) the repo's name.
    packages = list(rules.package_names) or (
        list(tree.packages) if tree is not None and tree.packages else []
    )
    if not packages and tree is None:
        packages = [issue.repo.rsplit("/", 1)[-1].replace("-", "_")]
    return Prepared(
        title=make_part("title", (issue.title or "")[:500]),
        body=make_part(
            "body",
            cap(
                compact_blocks(cap(issue.body or "", 2 * rules.max_body_chars)),
                rules.max_body_chars,
            ),
        ),
        reporter=reporter,
        comments=said,
        labels=[normalise_label(label) for label in issue.labels[:100]],
        author_is_maintainer=is_maintainer(issue.author, issue.author_association, rules),
        package_names=tuple(p.lower() for p in packages if p),
        tree=tree,
    )
