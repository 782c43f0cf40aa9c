"""Keep the issue mirror fresh from webhooks: every item and comment change lands in SQLite."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.delivery.context import EventContext
from bot.mirror.webhooks import apply_event

router = routing.Router()


@router.register("issues")
@router.register("issue_comment")
@router.register("pull_request")
@router.register("label")
async def on_item_change(event: sansio.Event, ctx: EventContext) -> None:
    # A few milliseconds of SQLite on the loop's thread: the store's connection lives there.
    apply_event(ctx.services.mirror, event.event, event.data)


@router.register("push")
async def on_push(event: sansio.Event, ctx: EventContext) -> None:
    """A push to the default branch makes the stored tree stale (bot/github/trees.py)."""
    ctx.services.trees.on_push(event.data)
