"""`issues import FILE`: detect the format, stream the issues into the mirror.

JSON lines are read one line at a time, so a large REST dump never sits in memory
whole; the coordinator export is one JSON object and is parsed at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bot.mirror.formats import ImportFormatError, parse_coordinator_export, parse_rest_lines
from bot.models import Issue
from bot.store.mirror import MirrorStore


def _lines(handle: IO[str], first: str) -> Iterator[str]:
    yield first
    yield from handle


def read_issues(handle: IO[str]) -> Iterator[Issue]:
    """Issues of either import format, detected from the first line."""
    first = handle.readline()
    while first and not first.strip():
        first = handle.readline()
    try:
        head: Any = json.loads(first)
    except json.JSONDecodeError:
        head = None
    if isinstance(head, dict) and "issue" in head:
        yield from parse_rest_lines(_lines(handle, first))
        return
    if not (isinstance(head, dict) and "repository" in head):
        try:
            head = json.loads(first + handle.read())
        except json.JSONDecodeError as exc:
            raise ImportFormatError(
                f"neither a coordinator export nor REST JSON lines ({exc.msg} at line {exc.lineno})"
            ) from None
    yield from parse_coordinator_export(head)


def import_file(store: MirrorStore, path: Path | str) -> int:
    """Load `path` into the mirror; re-importing the same file changes nothing. Returns the count."""
    with open(path, encoding="utf-8") as handle:
        return store.upsert_many(read_issues(handle))
