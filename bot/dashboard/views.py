"""Pure pieces of the pages: the hourly chart, prompt diffs, times, pagination."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import UTC, datetime

# A diff of two prompts is capped: a huge diff is unreadable and costly to render.
MAX_DIFF_LINES = 4000


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    label: str  # "14:00" (UTC), also the bar's accessible title


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    total: int
    first: str
    last: str


def hourly_chart(
    counts: list[int], *, now: float, width: int = 480, height: int = 120, axis: int = 18
) -> Chart:
    """Bar geometry for deliveries per hour (oldest first); the template draws the SVG."""
    peak = max(counts, default=0)
    slot = width / max(1, len(counts))
    plot = height - axis
    start = now - len(counts) * 3600
    bars = []
    for index, count in enumerate(counts):
        bar_height = 0.0 if peak == 0 else max(1.0, plot * count / peak) if count else 0.0
        hour = datetime.fromtimestamp(start + index * 3600, UTC).strftime("%H:00")
        bars.append(
            Bar(
                x=round(index * slot + 1, 2),
                y=round(plot - bar_height, 2),
                width=round(max(1.0, slot - 2), 2),
                height=round(bar_height, 2),
                count=count,
                label=hour,
            )
        )
    return Chart(
        width=width,
        height=height,
        bars=bars,
        peak=peak,
        total=sum(counts),
        first=bars[0].label if bars else "",
        last=bars[-1].label if bars else "",
    )


@dataclass(frozen=True)
class DiffLine:
    kind: str  # add | del | hunk | same | file
    text: str


def prompt_diff(old: str, new: str, *, old_name: str, new_name: str) -> list[DiffLine]:
    """A unified diff of two prompt versions, each line tagged for styling."""
    lines: list[DiffLine] = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=3
    ):
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        lines.append(DiffLine(kind, line))
        if len(lines) >= MAX_DIFF_LINES:
            lines.append(DiffLine("hunk", f"... diff cut at {MAX_DIFF_LINES} lines"))
            break
    return lines


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def age(seconds: float | None) -> str:
    """'3 h 12 min', '45 s': how long something has waited."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
