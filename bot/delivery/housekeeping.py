"""GitHub's housekeeping events: ping and installation changes are acknowledged and logged."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.delivery.context import EventContext

router = routing.Router()


@router.register("ping")
async def on_ping(event: sansio.Event, ctx: EventContext) -> None:
    hook = event.data.get("hook") or {}
    ctx.log.info(
        "ping for hook %s (events: %s)", hook.get("id"), ",".join(hook.get("events") or [])
    )


@router.register("installation")
@router.register("installation_repositories")
async def on_installation(event: sansio.Event, ctx: EventContext) -> None:
    account = (event.data.get("installation") or {}).get("account") or {}
    ctx.log.info("installation %s for %s", event.data.get("action"), account.get("login"))
