"""The one parser of issue references in text: `#12`, `owner/name#12`, issue URLs.

GitHub links `#12` only when it stands alone: `abc#12`, `a/#12` and HTML entities such as
`&#12;` are not references. Every scan is led by a literal (`#` or the URL's scheme) and
looks back a bounded distance, so hostile text costs linear time.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_HASH = re.compile(r"#(\d{1,7})\b")
# `owner/name` right before the `#` (looked for in at most QUALIFIER_CHARS characters).
_QUALIFIER = re.compile(r"(?:^|[^\w.-])([\w.-]+/[\w.-]+)$")
QUALIFIER_CHARS = 100
_URL = re.compile(r"https?://github\.com/([\w.-]+/[\w.-]+)/issues/(\d{1,7})\b")
_CLOSING_KEYWORD = re.compile(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?[ \t]+$")
_KEYWORD_CHARS = 40
_NAMED = re.compile(r"^([\w.-]+/[\w.-]+)#(\d+)$")


class Reference(NamedTuple):
    """One reference; `repo` is None for a bare `#N` (the text's own repository)."""

    number: int
    repo: str | None
    start: int  # where the reference begins (its `owner/name` when qualified)
    end: int

    def target(self, own_repo: str) -> tuple[str, int]:
        return (self.repo or own_repo, self.number)


def references(text: str) -> list[Reference]:
    """Every reference in `text`, in order of appearance."""
    found = []
    for match in _HASH.finditer(text):
        before = text[max(0, match.start() - QUALIFIER_CHARS) : match.start()]
        # Only `...x/y#N` can be qualified: the regex runs only then (cheap on long words).
        wordy = bool(before) and (before[-1].isalnum() or before[-1] in "_.-")
        qualified = _QUALIFIER.search(before) if wordy and "/" in before else None
        number = int(match.group(1))
        if qualified:
            start = match.start() - len(qualified.group(1))
            found.append(Reference(number, qualified.group(1), start, match.end()))
        elif not before or not (before[-1].isalnum() or before[-1] in "_/&"):
            found.append(Reference(number, None, match.start(), match.end()))
    urls = [Reference(int(m[2]), m[1], m.start(), m.end()) for m in _URL.finditer(text)]
    if urls:  # merged in order of appearance
        found = sorted(found + urls, key=lambda ref: ref.start)
    return found


def targets(text: str, own_repo: str) -> list[tuple[str, int]]:
    """(repo, number) of every reference, bare ones resolved to `own_repo`."""
    return [ref.target(own_repo) for ref in references(text)]


def bare_numbers(text: str) -> list[int]:
    """Numbers of the bare `#N` references (this repository's issues), in order."""
    return [ref.number for ref in references(text) if ref.repo is None]


def closing_targets(text: str, own_repo: str) -> list[tuple[str, int]]:
    """Issues a PR body closes with GitHub's keywords (fix/fixes/fixed, close..., resolve...)."""
    return [
        ref.target(own_repo)
        for ref in references(text)
        # Searched in place (not in a slice), so `\b` sees the character before the window.
        if _CLOSING_KEYWORD.search(text, max(0, ref.start - _KEYWORD_CHARS), ref.start)
    ]


def parse_named(value: str) -> tuple[str, int] | None:
    """`owner/name#N` as a whole (a command-line argument), or None."""
    match = _NAMED.match(value)
    return (match.group(1), int(match.group(2))) if match else None
