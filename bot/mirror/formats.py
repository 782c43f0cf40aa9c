"""Parse the import formats of DESIGN.md into `bot.models.Issue`.

Input comes from files people keep around, so every field is optional and odd
values (null author, missing body, unknown timeline types) are tolerated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from bot.models import REACTION_NAMES, Comment, Issue, TimelineEvent


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


# --- GitHub REST objects (format 2 of DESIGN.md, and webhook payloads) -------------


def _login(user: Any) -> str | None:
    if isinstance(user, dict) and isinstance(user.get("login"), str):
        return str(user["login"])
    return None


def _is_bot(user: Any) -> bool:
    return isinstance(user, dict) and (
        user.get("type") == "Bot" or str(user.get("login") or "").endswith("[bot]")
    )


def _rest_reactions(value: Any) -> dict[str, int]:
    """REST `reactions` ({"+1": 2, "total_count": 2, "url": ...}) in GraphQL names."""
    if not isinstance(value, dict):
        return {}
    return {
        REACTION_NAMES[k]: v
        for k, v in value.items()
        if k in REACTION_NAMES and isinstance(v, int) and v > 0
    }


def _repo_from_url(url: Any) -> str | None:
    """`owner/name` from an api.github.com or github.com issue/PR URL."""
    if not isinstance(url, str):
        return None
    match = _REPO_IN_URL.search(url)
    return f"{match.group(1)}/{match.group(2)}" if match else None


_REPO_IN_URL = re.compile(r"(?:/repos/|github\.com/)([\w.-]+)/([\w.-]+)/(?:issues|pull|pulls)/\d+")


def rest_comment(raw: dict[str, Any]) -> Comment:
    return Comment(
        id=raw.get("id") if isinstance(raw.get("id"), int) else None,
        author=_login(raw.get("user")),
        author_association=raw.get("author_association")
        if isinstance(raw.get("author_association"), str)
        else None,
        author_is_bot=_is_bot(raw.get("user")),
        body=_text(raw.get("body")),
        created_at=_when(raw.get("created_at")),
        updated_at=_when(raw.get("updated_at")),
        reactions=_rest_reactions(raw.get("reactions")),
        url=raw.get("html_url") if isinstance(raw.get("html_url"), str) else None,
    )


_REST_EVENT_TYPES = {
    "labeled": "LabeledEvent",
    "unlabeled": "UnlabeledEvent",
    "closed": "ClosedEvent",
    "reopened": "ReopenedEvent",
    "cross-referenced": "CrossReferencedEvent",
}


def rest_timeline_event(raw: dict[str, Any]) -> TimelineEvent | None:
    """A REST timeline event; kinds the mirror does not use (commented, subscribed ...) give None."""
    kind = _REST_EVENT_TYPES.get(str(raw.get("event")))
    if kind is None:
        return None
    label = raw.get("label")
    event = TimelineEvent(
        type=kind,
        created_at=_when(raw.get("created_at")),
        actor=_login(raw.get("actor")),
        label=label.get("name") if isinstance(label, dict) else None,
    )
    source = raw.get("source")
    if kind == "CrossReferencedEvent" and isinstance(source, dict):
        item = source.get("issue")
        if isinstance(item, dict):
            pull = item.get("pull_request")
            is_pr = isinstance(pull, dict)
            state = str(item.get("state") or "").upper() or None
            if isinstance(pull, dict) and pull.get("merged_at"):
                state = "MERGED"
            repository = item.get("repository")
            event.source_type = "PullRequest" if is_pr else "Issue"
            event.source_number = (
                item.get("number") if isinstance(item.get("number"), int) else None
            )
            event.source_title = _text(item.get("title")) or None
            event.source_state = state
            event.source_url = (
                item.get("html_url") if isinstance(item.get("html_url"), str) else None
            )
            event.source_body = _text(item.get("body")) or None
            event.source_repo = (
                repository.get("full_name")
                if isinstance(repository, dict) and isinstance(repository.get("full_name"), str)
                else _repo_from_url(item.get("html_url") or item.get("url"))
            )
    return event


def rest_issue(
    repo: str,
    raw: dict[str, Any],
    comments: Iterable[Any] = (),
    timeline: Iterable[Any] = (),
) -> Issue:
    """A REST issue or pull request object (also the `issue`/`pull_request` of webhooks)."""
    number = raw.get("number")
    if not isinstance(number, int):
        raise ImportFormatError(f"issue without an integer 'number': {str(raw)[:80]!r}")
    parsed_comments = [rest_comment(c) for c in comments if isinstance(c, dict)]
    events = [rest_timeline_event(e) for e in timeline if isinstance(e, dict)]
    pull = raw.get("pull_request")
    is_pr = isinstance(pull, dict) or "head" in raw
    merged: bool | None = None
    if is_pr:
        merged = bool(raw.get("merged") or raw.get("merged_at") or (pull or {}).get("merged_at"))
    head = raw.get("head")
    labels = raw.get("labels") or []
    count = raw.get("comments")
    return Issue(
        repo=repo,
        number=number,
        title=_text(raw.get("title")),
        body=_text(raw.get("body")),
        state="closed" if raw.get("state") == "closed" else "open",
        state_reason=raw.get("state_reason") if isinstance(raw.get("state_reason"), str) else None,
        is_pull_request=is_pr,
        merged=merged,
        head_ref=head.get("ref")
        if isinstance(head, dict) and isinstance(head.get("ref"), str)
        else None,
        author=_login(raw.get("user")),
        author_association=raw.get("author_association")
        if isinstance(raw.get("author_association"), str)
        else None,
        created_at=_when(raw.get("created_at")),
        updated_at=_when(raw.get("updated_at")),
        closed_at=_when(raw.get("closed_at")),
        assignees=[a for a in (_login(u) for u in raw.get("assignees") or []) if a],
        labels=[
            lbl["name"] if isinstance(lbl, dict) else lbl
            for lbl in labels
            if (isinstance(lbl, dict) and isinstance(lbl.get("name"), str)) or isinstance(lbl, str)
        ],
        reactions=_rest_reactions(raw.get("reactions")),
        comment_count=count if isinstance(count, int) else len(parsed_comments),
        comments=parsed_comments,
        timeline=[e for e in events if e is not None],
        url=raw.get("html_url") if isinstance(raw.get("html_url"), str) else None,
    )


def parse_rest_line(data: Any) -> Issue:
    """One line of the REST JSON-lines format: {"repository", "issue", "comments", "timeline"}."""
    if not isinstance(data, dict) or not isinstance(data.get("issue"), dict):
        raise ImportFormatError("not a REST JSON line: no 'issue' object")
    issue = data["issue"]
    repo = data.get("repository")
    if isinstance(repo, dict):
        repo = repo.get("full_name")
    if not isinstance(repo, str):
        repo = _repo_from_url(issue.get("html_url") or issue.get("url"))
    if not repo:
        raise ImportFormatError("REST JSON line without a repository")
    return rest_issue(repo, issue, data.get("comments") or [], data.get("timeline") or [])


def parse_rest_lines(lines: Iterable[str]) -> Iterator[Issue]:
    """Issues of a JSON-lines file; blank lines are skipped, a bad line names its number."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"line {lineno}: not JSON ({exc.msg})") from None
        try:
            yield parse_rest_line(data)
        except ImportFormatError as exc:
            raise ImportFormatError(f"line {lineno}: {exc}") from None
