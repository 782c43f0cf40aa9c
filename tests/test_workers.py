"""Workers over a real SQLite inbox: retries, dead letters, ordering, coalescing, recovery."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gidgethub import routing, sansio

from bot.delivery.context import EventContext, Services
from bot.delivery.inbox import Inbox, describe
from bot.delivery.workers import WorkerPool
from bot.errors import PermanentError, RetryLater
from bot.service import build_services
from tests.service_fixtures import delivery_rows, make_settings, settled


def issue_payload(number: int, repo: str = "octo/repo", action: str = "edited") -> dict[str, Any]:
    return {
        "action": action,
        "issue": {"number": number},
        "repository": {"full_name": repo},
        "installation": {"id": 7},
    }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def run_pool(
    tmp_path: Path,
    router: routing.Router,
    session: aiohttp.ClientSession,
    *,
    workers: int = 4,
    **settings: Any,
):
    config = make_settings(tmp_path, workers=workers, **settings)
    services = build_services(config, session)
    services.inbox.start()
    pool = WorkerPool(services, router, workers)
    return services, pool


async def add(
    services: Services, event: str, payload: dict[str, Any], delivery: str, delay: float = 0.0
) -> None:
    body = json.dumps(payload).encode()
    assert await services.inbox.add(
        describe(event, payload, delivery, body, now=time.time(), delay=delay)
    )


async def test_failures_are_retried_with_backoff_then_dead_lettered_with_the_error(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    router = routing.Router()
    calls: list[float] = []

    @router.register("issues")
    async def always_fails(event: sansio.Event, ctx: EventContext) -> None:
        calls.append(time.monotonic())
        raise RuntimeError("GitHub said no")

    services, pool = await run_pool(
        tmp_path, router, session, max_attempts=3, retry_base_seconds=0.05
    )
    await add(services, "issues", issue_payload(1), "d1")
    await pool.start()
    rows = await settled(services.settings.db, ["d1"])
    await pool.stop()
    assert rows["d1"]["status"] == "dead"
    assert rows["d1"]["attempts"] == 3
    assert "RuntimeError: GitHub said no" in rows["d1"]["last_error"]
    assert len(calls) == 3
    assert calls[2] - calls[1] >= 0.05 * 0.5  # backed off before the third try
    await services.inbox.close()


async def test_a_transient_failure_recovers(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    router = routing.Router()
    calls = []

    @router.register("issues")
    async def flaky(event: sansio.Event, ctx: EventContext) -> None:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("reset by peer")

    services, pool = await run_pool(tmp_path, router, session)
    await add(services, "issues", issue_payload(1), "d1")
    await pool.start()
    rows = await settled(services.settings.db, ["d1"])
    await pool.stop()
    assert rows["d1"]["status"] == "done" and rows["d1"]["completions"] == 1 and len(calls) == 2
    await services.inbox.close()


async def test_permanent_error_is_dead_lettered_at_once(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    router = routing.Router()

    @router.register("issues")
    async def not_found(event: sansio.Event, ctx: EventContext) -> None:
        raise PermanentError("GET /repos/octo/repo/issues/1: 404 Not Found")

    services, pool = await run_pool(tmp_path, router, session)
    await add(services, "issues", issue_payload(1), "d1")
    await pool.start()
    rows = await settled(services.settings.db, ["d1"])
    await pool.stop()
    assert rows["d1"]["status"] == "dead" and rows["d1"]["attempts"] == 1
    assert "404" in rows["d1"]["last_error"]
    await services.inbox.close()


async def test_retry_later_does_not_use_up_attempts(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    router = routing.Router()
    calls = []

    @router.register("issues")
    async def rate_limited(event: sansio.Event, ctx: EventContext) -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise RetryLater(0.02, "rate limit")

    services, pool = await run_pool(tmp_path, router, session, max_attempts=2)
    await add(services, "issues", issue_payload(1), "d1")
    await pool.start()
    rows = await settled(services.settings.db, ["d1"])
    await pool.stop()
    assert rows["d1"]["status"] == "done" and len(calls) == 4
    await services.inbox.close()


async def test_two_deliveries_about_one_issue_never_run_at_the_same_time(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    router = routing.Router()
    running: dict[str, int] = {}
    overlap: list[str] = []
    order: dict[str, list[str]] = {}

    @router.register("issues")
    async def slow(event: sansio.Event, ctx: EventContext) -> None:
        subject = ctx.delivery.subject or ""
        running[subject] = running.get(subject, 0) + 1
        if running[subject] > 1:
            overlap.append(subject)
        order.setdefault(subject, []).append(ctx.delivery.id)
        await asyncio.sleep(0.01)
        running[subject] -= 1

    services, pool = await run_pool(tmp_path, router, session, workers=6)
    await pool.start()
    ids = []
    for i in range(40):
        delivery = f"d{i:02d}"
        ids.append(delivery)
        await add(services, "issues", issue_payload(i % 3), delivery)
        await asyncio.sleep(0.001)
    rows = await settled(services.settings.db, ids)
    await pool.stop()
    assert overlap == []
    assert all(r["status"] == "done" and r["completions"] == 1 for r in rows.values())
    for seen in order.values():
        assert seen == sorted(seen)  # one issue's deliveries run in arrival order
    await services.inbox.close()


async def test_a_burst_about_one_issue_is_coalesced_into_one_deferred_job(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    router = routing.Router()
    triages: list[list[str]] = []
    seen: list[str] = []

    @router.register("issues")
    async def retriage(event: sansio.Event, ctx: EventContext) -> None:
        seen.append(ctx.delivery.id)

        async def triage() -> None:
            triages.append(list(seen))

        ctx.defer(("triage", ctx.delivery.subject), triage)

    services, pool = await run_pool(tmp_path, router, session)
    ids = [f"e{i}" for i in range(5)]
    for delivery in ids:  # a burst of edits, debounced, all waiting when the worker looks
        await add(services, "issues", issue_payload(9), delivery, delay=0.2)
    await pool.start()
    rows = await settled(services.settings.db, ids)
    await pool.stop()
    assert all(r["status"] == "done" for r in rows.values())
    assert len(triages) == 1 and triages[0] == ids
    await services.inbox.close()


async def test_deliveries_in_progress_at_a_crash_are_processed_after_restart(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    router = routing.Router()
    handled = []

    @router.register("issues")
    async def record(event: sansio.Event, ctx: EventContext) -> None:
        handled.append(ctx.delivery.id)

    services, pool = await run_pool(tmp_path, router, session)
    await add(services, "issues", issue_payload(1), "d1")
    await add(services, "issues", issue_payload(2), "d2")
    assert await services.inbox.claim()  # a worker took d1 and then the process died
    await services.inbox.close()

    services, pool = await run_pool(tmp_path, router, session)
    await pool.start()
    rows = await settled(services.settings.db, ["d1", "d2"])
    await pool.stop()
    assert sorted(handled) == ["d1", "d2"]
    assert all(r["status"] == "done" and r["completions"] == 1 for r in rows.values())
    await services.inbox.close()


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_group_commit_acknowledges_concurrent_deliveries(
    tmp_path: Path, synchronous: str
) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3", synchronous=synchronous)
    inbox.start()
    payload = issue_payload(1)
    body = json.dumps(payload).encode()
    results = await asyncio.gather(
        *(
            inbox.add(describe("issues", payload, f"g{i}", body, now=time.time(), delay=0))
            for i in range(200)
        ),
        inbox.add(describe("issues", payload, "g0", body, now=time.time(), delay=0)),
    )
    assert sum(results) == 200  # the repeated id is refused, every other one stored
    assert len(delivery_rows(tmp_path / "inbox.sqlite3")) == 200
    await inbox.close()


async def test_the_wal_is_checkpointed_in_the_background_not_in_commits(tmp_path: Path) -> None:
    db = tmp_path / "inbox.sqlite3"
    inbox = Inbox(db)
    inbox.start()
    payload = issue_payload(1) | {"padding": "x" * 20_000}
    body = json.dumps(payload).encode()
    for i in range(100):
        await inbox.add(describe("issues", payload, f"w{i}", body, now=time.time(), delay=0))
    assert db.stat().st_size < 1_000_000, "commits alone do not copy the WAL into the database"
    await asyncio.sleep(1.5)
    assert db.stat().st_size > 2_000_000, "the background checkpointer did"
    await inbox.close()
