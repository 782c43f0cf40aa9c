"""Which special hardware an issue needs, from keyword mentions weighed by where they appear.

A mention in the title or a label counts 2, elsewhere 1; a class counts once its mentions
reach `hardware_min_mentions`. Lines of an environment dump that deny the hardware
("ROCM Version: N/A", "Is XPU available: False") do not count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bot.config.triage import TriageRules
from bot.triage.text import Part, Prepared, snippet

MAX_MATCHES_PER_PART = 20
_GPU_COUNT = "\0gpu-count"  # internal key of the GPU-count scanner
_NEGATED_LINE_RE = re.compile(
    r"(?::|=)\s{0,4}(?:n/?a|false|none|no|0|disabled|could not collect|not (?:installed|found|available|set))"
    r"\s{0,4}(?:\(n/?a\))?\s{0,4}$",
    re.I,
)
# Over normalised text (lower case). Two or more GPUs: "2x A100", "4090 * 2", "4 GPUs", "cuda:1".
_GPU_NAMES = (
    "gpu",
    "a100",
    "h100",
    "h200",
    "h800",
    "a800",
    "a6000",
    "a10",
    "l40",
    "v100",
    "t4",
    "3090",
    "4090",
    "5090",
    "cards",
    "cuda:",
)
_GPU = r"(?:gpus?|a100|h100|h200|h800|a800|a6000|a10g?|l40s?|v100|t4|3090|4090|5090)"
_GPU_COUNT_RE = re.compile(
    r"(?<![\w.])(?:[2-9]|[1-9]\d)(?: ?[x×*] ?(?:nvidia |rtx ?)?"
    + _GPU
    + r"| (?:nvidia )?(?:gpus|cards)\b)"
    r"|" + _GPU + r" ?[x×*] ?(?:[2-9]|[1-9]\d)(?![\d.])|cuda:[1-9]\b"
)


# "tensor_parallel_size=1", "world size: 1", "data parallel 1": one device after all.
_ONE_DEVICE_RE = re.compile(r" ?(?:size|degree|world size)?[ =:]{0,3}1(?![\d.])")


@dataclass(frozen=True)
class HardwareNeed:
    name: str
    mentions: int
    evidence: str


_SEPARATORS = str.maketrans({"-": " ", "_": " "})
_PUNCTUATION = str.maketrans({c: " " for c in "!\"#$%&'()*+,./:;<=>?@[\\]^`{|}~"})


def normalise(text: str) -> str:
    """Lower case with '-' and '_' as spaces; same length, so offsets stay valid."""
    return text.lower().translate(_SEPARATORS)


def keyword_pattern(keyword: str) -> str:
    """A config keyword as a regex over normalised text: '#' is a number such as 942 or 300x."""
    escaped = re.escape(normalise(keyword.strip()))
    return escaped.replace(r"\#", r"\d{1,4}[a-z]{0,2}").replace(r"\ ", " ?")


@dataclass(frozen=True)
class _Keyword:
    hardware: str
    needle: str  # a whole word the text must contain, or a prefix when `prefix`
    prefix: bool
    regex: re.Pattern[str]


def _keyword(hardware: str, word: str) -> _Keyword:
    first = normalise(word.strip()).translate(_PUNCTUATION.copy() | {ord("#"): "#"}).split()[0]
    prefix = "#" in first
    return _Keyword(
        hardware,
        first.split("#")[0] if prefix else first,
        prefix,
        re.compile(keyword_pattern(word)),
    )


@lru_cache(maxsize=64)
def _compiled(keywords: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[_Keyword, ...]:
    """One literal-first pattern per keyword: far faster than one big alternation."""
    return tuple(_keyword(name, word) for name, words in keywords for word in words if word.strip())


def _keywords(rules: TriageRules) -> tuple[_Keyword, ...]:
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
    scanners: tuple[_Keyword, ...], part: Part, weight: int
) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    text = normalise(part.text)
    words = set(text.translate(_PUNCTUATION).split())
    for keyword in scanners:
        if keyword.hardware == _GPU_COUNT:
            if not any(name in text for name in _GPU_NAMES):
                continue
        elif not (keyword.needle in text if keyword.prefix else keyword.needle in words):
            continue
        name = keyword.hardware
        for i, match in enumerate(keyword.regex.finditer(text)):
            if i >= MAX_MATCHES_PER_PART:
                break
            if name != _GPU_COUNT and not _whole_word(text, match.start(), match.end()):
                continue
            if _NEGATED_LINE_RE.search(_line_at(part.text, match.start())):
                continue
            if name != _GPU_COUNT and _ONE_DEVICE_RE.match(text, match.end()):
                continue
            total, evidence = found.get(name, (0, ""))
            found[name] = (total + weight, evidence or snippet(part, match.start(), match.end()))
    return found


def detect_hardware(prepared: Prepared, rules: TriageRules) -> list[HardwareNeed]:
    """Hardware classes the issue needs, strongest first."""
    scanners = _keywords(rules)
    if rules.gpu_count_hardware:
        scanners += (_Keyword(_GPU_COUNT, "", True, _GPU_COUNT_RE),)
    labels = Part(where="labels", text="\n".join(prepared.labels))
    weighted: list[tuple[Part, int]] = [(prepared.title, 2), (labels, 2), (prepared.body, 1)]
    weighted += [(said.part, 1) for said in prepared.comments]
    totals: dict[str, tuple[int, str]] = {}
    for part, weight in weighted:
        for name, (found, evidence) in _mentions(scanners, part, weight).items():
            if name == _GPU_COUNT:
                name = rules.gpu_count_hardware or name
            total, first = totals.get(name, (0, ""))
            totals[name] = (total + found, first or evidence)
    needs = [
        HardwareNeed(name, total, evidence)
        for name, (total, evidence) in totals.items()
        if total >= rules.hardware_min_mentions
    ]
    return sorted(needs, key=lambda need: (-need.mentions, need.name))
