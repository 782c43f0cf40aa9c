"""Redelivery catch-up: ask GitHub again for deliveries that never reached our inbox.

GitHub does not retry a failed webhook delivery by itself. After downtime the App's
delivery log (GET /app/hook/deliveries) still lists the failures, and each can be
redelivered once asked (POST /app/hook/deliveries/{id}/attempts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.github.client import GitHubClient, GitHubFactory
from bot.github.faults import GitHubRequestError

log = logging.getLogger(__name__)


def _delivered_at(delivery: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(delivery["delivered_at"]).replace("Z", "+00:00"))


def _succeeded(delivery: dict[str, Any]) -> bool:
    status = delivery.get("status_code")
    return isinstance(status, int) and 200 <= status < 400


def failed_deliveries(deliveries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """guid -> the delivery id to redeliver, for events no attempt delivered.

    A guid appears once per attempt (redeliveries share it); it counts as failed only
    when every attempt failed (status_code >= 400, or 0/absent: never delivered), and
    the newest attempt is the one to redeliver.
    """
    newest: dict[str, tuple[datetime, int]] = {}
    delivered: set[str] = set()
    for delivery in deliveries:
        guid = str(delivery["guid"])
        if _succeeded(delivery):
            delivered.add(guid)
            continue
        when = _delivered_at(delivery)
        if guid not in newest or when > newest[guid][0]:
            newest[guid] = (when, int(delivery["id"]))
    return {guid: delivery_id for guid, (_, delivery_id) in newest.items() if guid not in delivered}


async def catch_up(
    app: GitHubClient,
    known_guids: Callable[[list[str]], set[str]],
    *,
    since: datetime,
) -> list[str]:
    """Ask for redelivery of failed deliveries since `since` that our inbox lacks.

    `app` must be authenticated as the App (GitHubFactory.app_client()); `known_guids`
    returns which of the given guids the inbox already holds; `since` must be
    timezone-aware. Returns the guids it asked GitHub to redeliver.
    """
    recent: list[dict[str, Any]] = []
    deliveries = app.iter_hook_deliveries()
    async with aclosing(deliveries):
        async for delivery in deliveries:
            if _delivered_at(delivery) < since:
                break  # newest first: everything after this is older
            recent.append(delivery)
    failed = failed_deliveries(recent)
    if not failed:
        return []
    known = known_guids(sorted(failed))
    asked: list[str] = []
    for guid, delivery_id in sorted(failed.items()):
        if guid in known:
            continue
        try:
            await app.redeliver(delivery_id)
        except GitHubRequestError as exc:  # e.g. too old to redeliver; the rest still go
            log.warning("redelivery of %s (delivery %d) refused: %s", guid, delivery_id, exc)
            continue
        asked.append(guid)
    if asked:
        log.info("asked GitHub to redeliver %d missed deliveries", len(asked))
    return asked


async def keep_catching_up(
    factory: GitHubFactory,
    known_guids: Callable[[list[str]], set[str]],
    *,
    interval_minutes: int,
    first_window: timedelta = timedelta(hours=24),
) -> None:
    """On start, then every `interval_minutes`: redeliver what failed while we were away."""
    since = datetime.now(UTC) - first_window
    while True:
        started = datetime.now(UTC)
        try:
            asked = await catch_up(factory.app_client(), known_guids, since=since)
            if asked:
                log.warning("asked GitHub to redeliver %d failed deliveries", len(asked))
            since = started - timedelta(
                minutes=interval_minutes
            )  # overlap: nothing slips between scans
        except Exception:  # a bad scan must not stop the next one
            log.exception(
                "redelivery catch-up failed; trying again in %d minutes", interval_minutes
            )
        await asyncio.sleep(interval_minutes * 60)
