"""Which special hardware an issue needs, from keyword mentions weighed by where they appear.

A mention in the title or a label counts 2, elsewhere 1; a class counts once its mentions
reach `hardware_min_mentions`. Lines of an environment dump that deny the hardware
("ROCM Version: N/A", "Is XPU available: False") do not count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bot.triage.config import TriageRules
from bot.triage.text import Part, Prepared, snippet

MAX_MATCHES_PER_PART = 20
_NEGATED_LINE_RE = re.compile(
    r"(?::|=)\s{0,4}(?:n/?a|false|none|no|0|disabled|could not collect|not (?:installed|found|available|set))"
    r"\s{0,4}(?:\(n/?a\))?\s{0,4}$",
    re.I,
)
_GPU_COUNT_RE = re.compile(
    r"(?<![\w.])(?:[2-9]|[1-9]\d)\s?[x×*]\s?(?:nvidia |rtx ?)?(?:gpus?|a100|h100|h200|h800|a800|a6000|a10g?|l40s?|v100|t4|3090|4090|5090)"
    r"|\b(?:gpus?|a100|h100|h200|h800|a800|a6000|v100|3090|4090|5090)\s?[x×*]\s?(?:[2-9]|[1-9]\d)(?![\d.])"
    r"|(?<![\w.])(?:[2-9]|[1-9]\d) (?:nvidia )?(?:gpus|cards)\b|\bcuda:[1-9]\b",
    re.I,
)


@dataclass(frozen=True)
class HardwareNeed:
    name: str
    mentions: int
    evidence: str


def keyword_pattern(keyword: str) -> str:
    """A config keyword as a regex: escaped, '#' is a number, a space also matches '-' or '_'."""
    escaped = re.escape(keyword.strip().lower())
    escaped = escaped.replace(r"\#", r"\d{1,4}[a-z]{0,2}").replace(r"\ ", r"[\s_-]?")
    return escaped


@lru_cache(maxsize=64)
def _compiled(keywords: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """One pattern for every class (one group each), so text is scanned once."""
    groups: list[str] = []
    names: list[str] = []
    for name, words in keywords:
        alternatives = "|".join(
            keyword_pattern(w) for w in sorted(words, key=len, reverse=True) if w.strip()
        )
        if alternatives:
            groups.append(f"({alternatives})")
            names.append(name)
    return re.compile("|".join(groups) or r"(?!x)x", re.I), tuple(names)


def _keywords(rules: TriageRules) -> tuple[re.Pattern[str], tuple[str, ...]]:
    key = tuple(sorted((name, tuple(words)) for name, words in rules.hardware_keywords.items()))
    return _compiled(key)


def _line_at(text: str, start: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    return text[line_start : line_end if line_end != -1 else len(text)]


def _whole_word(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())


def _mentions(
    regex: re.Pattern[str], names: tuple[str, ...], part: Part, weight: int
) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for i, match in enumerate(regex.finditer(part.text)):
        if i >= MAX_MATCHES_PER_PART:
            break
        if not _whole_word(part.text, match.start(), match.end()):
            continue
        if _NEGATED_LINE_RE.search(_line_at(part.text, match.start())):
            continue
        name = names[(match.lastindex or 1) - 1]
        total, evidence = found.get(name, (0, ""))
        found[name] = (total + weight, evidence or snippet(part, match.start(), match.end()))
    return found


def detect_hardware(prepared: Prepared, rules: TriageRules) -> list[HardwareNeed]:
    """Hardware classes the issue needs, strongest first."""
    scanners = [_keywords(rules)]
    if rules.gpu_count_hardware:
        scanners.append((_GPU_COUNT_RE, (rules.gpu_count_hardware,)))
    labels = Part(where="labels", text="\n".join(prepared.labels))
    weighted: list[tuple[Part, int]] = [(prepared.title, 2), (labels, 2), (prepared.body, 1)]
    weighted += [(said.part, 1) for said in prepared.comments]
    totals: dict[str, tuple[int, str]] = {}
    for regex, names in scanners:
        for part, weight in weighted:
            for name, (found, evidence) in _mentions(regex, names, part, weight).items():
                total, first = totals.get(name, (0, ""))
                totals[name] = (total + found, first or evidence)
    needs = [
        HardwareNeed(name, total, evidence)
        for name, (total, evidence) in totals.items()
        if total >= rules.hardware_min_mentions
    ]
    return sorted(needs, key=lambda need: (-need.mentions, need.name))
