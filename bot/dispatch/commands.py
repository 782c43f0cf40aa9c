"""The `/dispatch` command in a comment, and the prose of untrusted markdown.

Comments come from anyone and are read before any permission check, so everything
here is one linear pass over at most `MAX_TEXT` characters: no regular expression
runs over the whole text, only over single short lines. Code blocks and quoted
replies say nothing the author asks for: `prose` drops them, CommonMark-style (a fence
closes only with a run of the same character at least as long; an unclosed fence runs
to the end of the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.github.references import bare_numbers

# GitHub caps a comment or an issue body at 65,536 characters; anything longer is not
# GitHub's and is read only up to there.
MAX_TEXT = 65_536
# A command line longer than this is not a command someone typed.
MAX_COMMAND_LINE = 1_000
COMMAND_WORD = "/dispatch"
_FORCE = re.compile(r"(?<![\w-])force(?![\w-])", re.IGNORECASE)
_FENCE_CHARS = "`~"


@dataclass(frozen=True)
class DispatchCommand:
    """`/dispatch` (this issue), `/dispatch #12 #15` (a batch) or `/dispatch force`."""

    numbers: tuple[int, ...] = ()
    force: bool = False


def _fence_opening(line: str) -> str | None:
    """The fence run (e.g. "````") a line opens with, or None."""
    stripped = line.lstrip(" \t")
    if not stripped or stripped[0] not in _FENCE_CHARS:
        return None
    char = stripped[0]
    run = len(stripped) - len(stripped.lstrip(char))
    if run < 3:
        return None
    if char == "`" and "`" in stripped[run:]:  # "```a`b" is inline code, not a fence
        return None
    return char * run


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip(" \t")
    return len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)


def prose_lines(text: str | None) -> list[str]:
    """The lines outside fenced code and `>` quotes, in order (one pass, capped)."""
    text = (text or "")[:MAX_TEXT]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if "`" not in text and "~" not in text and ">" not in text:
        return lines  # no fence and no quote: every line is prose
    kept: list[str] = []
    fence: str | None = None
    for line in lines:
        head = line.lstrip(" \t")[:1]
        if fence is not None:
            if head == fence[0] and _closes(line, fence):
                fence = None
            continue
        if head == ">":
            continue
        if head in _FENCE_CHARS and head:
            opening = _fence_opening(line)
            if opening is not None:
                fence = opening
                continue
        kept.append(line)
    return kept


def prose(text: str | None) -> str:
    """The author's own words: code blocks and quoted replies removed (linear time)."""
    return "\n".join(prose_lines(text))


def parse_dispatch_command(text: str | None) -> DispatchCommand | None:
    """The first `/dispatch` line of a comment (outside code and quotes), or None.

    Most comments hold no `/dispatch` at all, so a plain substring test comes first.
    """
    head = (text or "")[:MAX_TEXT]
    if COMMAND_WORD not in head.lower():
        return None
    for line in prose_lines(head):
        stripped = line.lstrip(" \t")
        if stripped[: len(COMMAND_WORD)].lower() != COMMAND_WORD:
            continue
        args = stripped[len(COMMAND_WORD) :]
        if args[:1] and (args[0].isalnum() or args[0] == "_"):
            continue  # "/dispatcher" is another word
        args = args[:MAX_COMMAND_LINE]
        # Only bare `#12` counts (not `other/repo#12` or `abc#12`): same-repository issues.
        numbers = tuple(dict.fromkeys(bare_numbers(args)))
        return DispatchCommand(numbers=numbers, force=_FORCE.search(args) is not None)
    return None
