"""Quoting untrusted text (issue bodies, comments, titles) so it stays data.

Fenced blocks are longer than any backtick run inside the text, so the text cannot
close its fence; invisible and direction-changing characters are removed; our own
hidden markers are neutralised so quoted text can never pass for a bot comment.
"""

from __future__ import annotations

import re
import unicodedata


def _format_characters() -> str:
    """Every format (`Cf`) character: zero-width, joiners, bidirectional controls, U+061C,
    the BOM, soft hyphen, and the tag characters, which spell hidden ASCII a person never
    sees but a model reads. Computed from Unicode once (planes 0, 1 and 14 hold them all)."""
    planes = (range(0x0, 0x20000), range(0xE0000, 0xE1000))
    return "".join(
        chr(c) for plane in planes for c in plane if unicodedata.category(chr(c)) == "Cf"
    )


# Format characters, the whole tag block (U+E0000-E007F, assigned or not) and the
# variation selectors (U+FE00-FE0F, U+E0100-E01EF), which can smuggle one byte each.
INVISIBLE = re.compile(
    "[" + re.escape(_format_characters()) + "\U000e0000-\U000e007f"
    "\ufe00-\ufe0f\U000e0100-\U000e01ef]"
)
# Line and paragraph separators break lines for some readers and not for others.
SEPARATORS = re.compile("[\u2028\u2029\x85]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
BACKTICK_RUN = re.compile(r"`+")
MARKER_OPEN = re.compile(r"<!--\s*agent-dispatch", re.IGNORECASE)
NEUTRAL_MARKER = "<!-- (quoted) agent\u2011dispatch"


def clean(text: str) -> str:
    """Normalise newlines and drop characters that hide or reorder text."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = SEPARATORS.sub("\n", INVISIBLE.sub("", text))
    text = CONTROL.sub("", text)
    return MARKER_OPEN.sub(NEUTRAL_MARKER, text)


def fence_for(text: str) -> str:
    longest = max((len(m.group(0)) for m in BACKTICK_RUN.finditer(text)), default=0)
    return "`" * max(3, longest + 1)


def fenced(text: str, info: str = "text") -> str:
    """A fenced block that `text` cannot close."""
    body = clean(text).rstrip("\n")
    fence = fence_for(body)
    return f"{fence}{info}\n{body}\n{fence}"


def inline(text: str, limit: int = 200) -> str:
    """One line of untrusted text as an inline code span (titles, names, labels)."""
    line = " ".join(clean(text).split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    if not line:
        return "(empty)"
    longest = max((len(m.group(0)) for m in BACKTICK_RUN.finditer(line)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{ticks}{pad}{line}{pad}{ticks}"


def excerpt(text: str, limit: int = 200) -> str:
    """A short single-line quote for evidence lists (plain, still cleaned)."""
    line = " ".join(clean(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
