"""The one place where deliveries meet the features: parse (pure), then act.

Each feature module has `parse(event, config) -> intent | None` and `act`. The
repository's config is loaded once per delivery, only for events a feature may act
on, and handed to every parser.
"""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.delivery import housekeeping, pull_requests
from bot.delivery.context import EventContext
from bot.dispatch import handlers as dispatch
from bot.mirror import handlers as mirror
from bot.triage import handlers as triage

# Events the mirror and caches follow (no config needed).
MIRROR_EVENTS = (*mirror.MIRRORED_EVENTS, "push")
# Events triage, dispatch or the PR handler may act on (with the repository's config).
ACTING_EVENTS = ("issues", "issue_comment", "pull_request")
# Deliveries the bot queues for itself; GitHub never sends them (app.yml does not list them).
INTERNAL_EVENTS = (dispatch.WINDOW_EVENT,)


async def on_delivery(event: sansio.Event, ctx: EventContext) -> None:
    services = ctx.services
    update = mirror.parse(event, None)
    if update is not None:
        await mirror.act(update, services.mirror, services.configs, services.trees)
    repository = event.data.get("repository")
    if event.event not in ACTING_EVENTS or ctx.delivery.installation_id is None:
        return
    if not isinstance(repository, dict) or not isinstance(repository.get("full_name"), str):
        return
    config = (await ctx.repo_config(repository["full_name"])).config
    if (wanted := triage.parse(event, config)) is not None:
        await triage.act(wanted, ctx)
    if (news := pull_requests.parse(event, config)) is not None:
        await pull_requests.act(news, ctx)
    if (asked := dispatch.parse(event, config)) is not None:
        await dispatch.act(asked, ctx, config)


def build_router() -> routing.Router:
    router = routing.Router()
    for event in MIRROR_EVENTS:
        router.add(on_delivery, event)
    router.add(dispatch.on_window_due, dispatch.WINDOW_EVENT)
    return routing.Router(housekeeping.router, router)
