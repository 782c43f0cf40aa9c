"""Twenty hostile 64 KB texts: the shapes that make backtracking parsers super-linear."""

from __future__ import annotations

SIZE = 64 * 1024


def _fill(unit: str, tail: str = "") -> str:
    body = unit * (SIZE // len(unit))
    return (body + tail)[:SIZE]


HOSTILE_SHAPES: dict[str, str] = {
    "backtick fence openers": _fill("```a\n"),
    "tilde fence openers": _fill("~~~a\n"),
    "one backtick run": _fill("`"),
    "fences then a command": _fill("```\n~~~\n", "\n/dispatch #1\n"),
    "quoted commands": _fill("> /dispatch #1\n"),
    "spaces, no newline": _fill(" "),
    "blank lines": _fill("\n"),
    "spaces and newlines": _fill(" \t\n"),
    "carriage returns": _fill("\r"),
    "depends on then spaces": "depends on" + " " * (SIZE - 10),
    "blocked by then newlines": "blocked by:" + "\n" * (SIZE - 11),
    "dependency lists": _fill("depends on #1, #2 and "),
    "references": _fill("#1 "),
    "open task lists": _fill("- [ ] "),
    "command prefixes": _fill("/dispatc"),
    "command with long arguments": "/dispatch " + _fill("#1 force "),
    "dotted names": _fill("a."),
    "path segments": _fill("a/"),
    "html comments": _fill("<!--"),
    "unicode word characters": _fill("\u00e9\u200b\U000e0041"),
}
assert len(HOSTILE_SHAPES) == 20
