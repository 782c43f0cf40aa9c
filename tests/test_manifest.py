"""app.yml asks for exactly the events the merged router handles, and the least permissions."""

from __future__ import annotations

from typing import Any

from gidgethub import routing

from bot.delivery.routing import INTERNAL_EVENTS, build_router
from bot.web.setup import APP_MANIFEST, load_manifest

# Sent to every webhook (ping) or to every App (installation changes), or queued by the bot
# itself: never listed.
IMPLICIT_EVENTS = {"ping", "installation", "installation_repositories", *INTERNAL_EVENTS}
# The events the bot's handler modules cover.
PLANNED_EVENTS = {"issues", "issue_comment", "pull_request", "label", "push"}
LEAST_PERMISSIONS = {
    "issues": "write",
    "pull_requests": "read",
    "contents": "read",
    "metadata": "read",
}


def registered_events(router: routing.Router) -> set[str]:
    """Every event type with a callback, plain or keyed on a payload field (e.g. action)."""
    shallow = {event for event, callbacks in router._shallow_routes.items() if callbacks}
    deep = {event for event, details in router._deep_routes.items() if any(details.values())}
    return shallow | deep


def manifest() -> dict[str, Any]:
    return load_manifest(APP_MANIFEST)


def test_every_routed_event_is_in_the_manifest() -> None:
    missing = (
        registered_events(build_router()) - IMPLICIT_EVENTS - set(manifest()["default_events"])
    )
    assert not missing, (
        f"handlers registered for events app.yml does not subscribe to: {sorted(missing)}"
    )


def test_the_manifest_asks_for_no_event_nobody_handles() -> None:
    unhandled = set(manifest()["default_events"]) - registered_events(build_router())
    assert not unhandled, f"app.yml subscribes to events no handler takes: {sorted(unhandled)}"


def test_the_manifest_is_complete_for_the_planned_handlers() -> None:
    events = manifest()["default_events"]
    assert set(events) == PLANNED_EVENTS
    assert len(events) == len(set(events))
    assert not IMPLICIT_EVENTS & set(events)


def test_the_manifest_asks_for_the_least_permissions() -> None:
    assert manifest()["default_permissions"] == LEAST_PERMISSIONS


def test_the_manifest_stays_private_and_leaves_urls_to_the_deployment() -> None:
    data = manifest()
    assert data["public"] is False
    assert isinstance(data["name"], str) and 0 < len(data["name"]) <= 34  # GitHub's limit
    assert not {"hook_attributes", "redirect_url", "callback_urls", "setup_url"} & set(data)


def test_the_event_reader_sees_plain_and_keyed_registrations() -> None:
    router = routing.Router()

    async def handler(event: Any, *args: Any) -> None:
        return None

    router.register("issues", action="labeled")(handler)
    router.register("label")(handler)
    assert registered_events(routing.Router(router)) == {"issues", "label"}
