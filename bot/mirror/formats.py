"""Parse the import formats of DESIGN.md into `bot.models.Issue`.

Input comes from files people keep around, so every field is optional and odd
values (null author, missing body, unknown timeline types) are tolerated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from bot.models import Comment, Issue, TimelineEvent


class ImportFormatError(ValueError):
    """The file is not one of the formats `issues import` accepts."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _reactions(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int) and v > 0}


def _coordinator_comment(raw: dict[str, Any]) -> Comment:
    return Comment(
        id=raw.get("id") if isinstance(raw.get("id"), int) else None,
        author=raw.get("author") if isinstance(raw.get("author"), str) else None,
        author_association=raw.get("author_association"),
        body=_text(raw.get("body")),
        created_at=_when(raw.get("created_at")),
        updated_at=_when(raw.get("updated_at")),
        reactions=_reactions(raw.get("reactions")),
    )


def _coordinator_event(raw: dict[str, Any]) -> TimelineEvent | None:
    kind = raw.get("type")
    if not isinstance(kind, str):
        return None
    source_type = raw.get("source_type")
    number = raw.get("source_number")
    return TimelineEvent(
        type=kind,
        created_at=_when(raw.get("created_at")),
        actor=raw.get("actor") if isinstance(raw.get("actor"), str) else None,
        label=raw.get("label") if isinstance(raw.get("label"), str) else None,
        source_type=source_type if source_type in ("Issue", "PullRequest") else None,
        source_repo=raw.get("source_repo") if isinstance(raw.get("source_repo"), str) else None,
        source_number=number if isinstance(number, int) else None,
        source_title=_text(raw.get("source_title")) or None,
        source_state=raw.get("source_state") if isinstance(raw.get("source_state"), str) else None,
        source_url=raw.get("source_url") if isinstance(raw.get("source_url"), str) else None,
    )


def coordinator_issue(repo: str, raw: dict[str, Any]) -> Issue:
    """One issue of the coordinator export."""
    number = raw.get("number")
    if not isinstance(number, int):
        raise ImportFormatError(f"issue without an integer 'number': {str(raw)[:80]!r}")
    comments = [_coordinator_comment(c) for c in raw.get("comments") or [] if isinstance(c, dict)]
    events = [_coordinator_event(e) for e in raw.get("timeline") or [] if isinstance(e, dict)]
    state = str(raw.get("state") or "OPEN").lower()
    return Issue(
        repo=repo,
        number=number,
        title=_text(raw.get("title")),
        body=_text(raw.get("body")),
        state="closed" if state == "closed" else "open",
        author=raw.get("author") if isinstance(raw.get("author"), str) else None,
        author_association=raw.get("author_association"),
        created_at=_when(raw.get("created_at")),
        updated_at=_when(raw.get("updated_at")),
        closed_at=_when(raw.get("closed_at")),
        assignees=[a for a in raw.get("assignees") or [] if isinstance(a, str)],
        labels=[lbl for lbl in raw.get("labels") or [] if isinstance(lbl, str)],
        reactions=_reactions(raw.get("reactions")),
        comment_count=int(raw.get("comment_count") or len(comments)),
        comments=comments,
        timeline=[e for e in events if e is not None],
        url=f"https://github.com/{repo}/issues/{number}",
    )


def parse_coordinator_export(data: Any) -> Iterator[Issue]:
    """Issues of a coordinator export object (format 1 of DESIGN.md)."""
    if not isinstance(data, dict) or not isinstance(data.get("repository"), str):
        raise ImportFormatError("not a coordinator export: no 'repository' string")
    repo = data["repository"]
    for key in ("open_issues", "closed_issues"):
        items: Iterable[Any] = data.get(key) or []
        for raw in items:
            if isinstance(raw, dict):
                yield coordinator_issue(repo, raw)
