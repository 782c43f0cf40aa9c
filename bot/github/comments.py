"""The bot's living comments: found again by hidden marker and author, edited in place.

PATCH only when the text changed, POST only when there is no comment of ours, so a
re-run never adds a second comment and an unchanged run writes nothing.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

CommentAction = Literal["created", "updated", "unchanged"]


class CommentWriter(Protocol):
    async def create_comment(self, repo: str, number: int, body: str) -> dict[str, Any]: ...
    async def update_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]: ...


def is_ours(comment: dict[str, Any], marker_prefix: str, bot_login: str | None) -> bool:
    """A comment starting with `marker_prefix` that the bot itself wrote (a user can copy a marker)."""
    body = comment.get("body") or ""
    user = comment.get("user") or {}
    if not body.startswith(marker_prefix):
        return False
    if bot_login:
        return bool(user.get("login") == bot_login)
    return bool(user.get("type") == "Bot")


async def upsert(
    gh: CommentWriter,
    repo: str,
    number: int,
    comments: list[dict[str, Any]],
    *,
    marker_prefix: str,
    bot_login: str | None,
    body: str,
) -> tuple[int | None, CommentAction]:
    ours = [c for c in comments if is_ours(c, marker_prefix, bot_login)]
    if ours:
        existing = ours[0]
        if (existing.get("body") or "").strip() == body.strip():
            return existing.get("id"), "unchanged"
        updated = await gh.update_comment(repo, int(existing["id"]), body)
        return updated.get("id", existing.get("id")), "updated"
    created = await gh.create_comment(repo, number, body)
    return created.get("id"), "created"
