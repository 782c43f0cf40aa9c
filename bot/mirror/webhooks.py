"""Apply one webhook delivery to the mirror, so the next query sees it (no network).

issues.* and pull_request.* carry the whole item; issue_comment.* carries the comment
and the issue; label.edited/deleted rename or drop a label on every mirrored item.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.mirror.formats import ImportFormatError, _when, rest_comment, rest_issue
from bot.models import TimelineEvent
from bot.store.mirror import MirrorStore

log = logging.getLogger(__name__)

_ISSUE_EVENTS = {
    "labeled": "LabeledEvent",
    "unlabeled": "UnlabeledEvent",
    "closed": "ClosedEvent",
    "reopened": "ReopenedEvent",
}


def _repo(payload: dict[str, Any]) -> str | None:
    repository = payload.get("repository")
    if isinstance(repository, dict) and isinstance(repository.get("full_name"), str):
        return str(repository["full_name"])
    return None


def _login(payload: dict[str, Any], key: str) -> str | None:
    user = payload.get(key)
    return user.get("login") if isinstance(user, dict) else None


def apply_event(store: MirrorStore, event: str, payload: dict[str, Any]) -> None:
    """Mirror the effect of `event` (the X-GitHub-Event name) with its payload."""
    repo = _repo(payload)
    action = payload.get("action")
    if repo is None:
        return
    try:
        if event in ("issues", "pull_request"):
            _apply_item(store, repo, event, str(action), payload)
        elif event == "issue_comment":
            _apply_comment(store, repo, str(action), payload)
        elif event == "label":
            _apply_label(store, repo, str(action), payload)
    except ImportFormatError as exc:
        log.warning("ignoring malformed %s.%s payload: %s", event, action, exc)


def _apply_item(
    store: MirrorStore, repo: str, event: str, action: str, payload: dict[str, Any]
) -> None:
    raw = payload.get("issue" if event == "issues" else "pull_request")
    if not isinstance(raw, dict):
        return
    if event == "pull_request":
        raw = {
            **raw,
            "pull_request": raw.get("pull_request") or {"merged_at": raw.get("merged_at")},
        }
    if action in ("deleted", "transferred"):
        if isinstance(raw.get("number"), int):
            store.delete_issue(repo, raw["number"])
        return
    item = rest_issue(repo, raw)
    with store.transaction():
        store.update_fields(item)
        kind = _ISSUE_EVENTS.get(action)
        if kind is None:
            return
        if kind == "ClosedEvent" and item.merged:
            kind = "MergedEvent"
        label = payload.get("label")
        store.add_timeline_event(
            repo,
            item.number,
            TimelineEvent(
                type=kind,
                created_at=item.closed_at
                if kind in ("ClosedEvent", "MergedEvent")
                else item.updated_at,
                actor=_login(payload, "sender"),
                label=label.get("name") if isinstance(label, dict) else None,
            ),
        )


def _apply_comment(store: MirrorStore, repo: str, action: str, payload: dict[str, Any]) -> None:
    raw_issue = payload.get("issue")
    raw_comment = payload.get("comment")
    if not isinstance(raw_issue, dict) or not isinstance(raw_comment, dict):
        return
    issue = rest_issue(repo, raw_issue)
    with store.transaction():
        if store.get_issue(repo, issue.number) is None or action != "deleted":
            store.update_fields(issue)
        if action == "deleted":
            if isinstance(raw_comment.get("id"), int):
                store.delete_comment(repo, issue.number, raw_comment["id"])
        else:
            comment = rest_comment(raw_comment)
            comment.updated_at = comment.updated_at or _when(raw_comment.get("created_at"))
            store.upsert_comment(repo, issue.number, comment)


def _apply_label(store: MirrorStore, repo: str, action: str, payload: dict[str, Any]) -> None:
    label = payload.get("label")
    if not isinstance(label, dict) or not isinstance(label.get("name"), str):
        return
    if action == "deleted":
        store.rename_label(repo, label["name"], None)
    elif action == "edited":
        old = ((payload.get("changes") or {}).get("name") or {}).get("from")
        if isinstance(old, str) and old != label["name"]:
            store.rename_label(repo, old, label["name"])
