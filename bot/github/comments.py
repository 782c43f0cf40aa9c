"""The bot's living comments: found again by hidden marker and author, edited in place.

PATCH only when the text changed, POST only when there is no comment of ours, so a
re-run never adds a second comment and an unchanged run writes nothing. A POST whose
outcome is unknown (GitHub applied it but answered 502, or the connection broke) is
followed by a read-back: the comment is looked up by its marker before posting again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, Protocol

from bot.github.faults import UnknownOutcome

log = logging.getLogger(__name__)

CommentAction = Literal["created", "updated", "unchanged"]
# Posts tried (each after a read-back that found nothing) before the delivery is retried.
MAX_POSTS = 4
# A moment for GitHub's read replicas to see a write before it is looked for.
READ_BACK_PAUSE = 0.3


class CommentWriter(Protocol):
    async def list_comments(self, repo: str, number: int) -> list[dict[str, Any]]: ...
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
        return await _edit(gh, repo, ours[0], body)
    posts = 0
    while True:
        try:
            posts += 1
            created = await gh.create_comment(repo, number, body)
            return created.get("id"), "created"
        except UnknownOutcome as exc:
            if posts >= MAX_POSTS:
                raise
            log.warning("%s; looking for the comment before posting again", exc)
            await asyncio.sleep(READ_BACK_PAUSE)
            ours = [
                c
                for c in await gh.list_comments(repo, number)
                if is_ours(c, marker_prefix, bot_login)
            ]
            if ours:
                comment_id, action = await _edit(gh, repo, ours[0], body)
                return comment_id, "created" if action == "unchanged" else action


async def _edit(
    gh: CommentWriter, repo: str, existing: dict[str, Any], body: str
) -> tuple[int | None, CommentAction]:
    if (existing.get("body") or "").strip() == body.strip():
        return existing.get("id"), "unchanged"
    updated = await gh.update_comment(repo, int(existing["id"]), body)
    return updated.get("id", existing.get("id")), "updated"
