"""Each delivery of a claimed batch is settled on its own: a bad one never sinks the good ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from gidgethub import routing, sansio

from bot.delivery.context import EventContext
from bot.errors import PermanentError, RetryLater
from tests.service_fixtures import settled
from tests.test_workers import add, issue_payload, run_pool


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def _router(bad: dict[str, Exception], handled: list[str], jobs: list[list[str]]) -> routing.Router:
    router = routing.Router()

    @router.register("issues")
    async def handle(event: sansio.Event, ctx: EventContext) -> None:
        handled.append(ctx.delivery.id)
        failure = bad.get(ctx.delivery.id)
        if failure is not None:
            raise failure

        async def triage() -> None:
            jobs.append(sorted(set(handled)))

        ctx.defer(("triage", ctx.delivery.subject), triage)

    return router


async def _run(
    tmp_path: Path, session: aiohttp.ClientSession, router: routing.Router, ids: list[str]
) -> dict[str, dict]:
    services, pool = await run_pool(tmp_path, router, session, max_attempts=2)
    for delivery in ids:  # all waiting when the worker looks: one batch about issue 9
        await add(services, "issues", issue_payload(9), delivery, delay=0.2)
    await pool.start()
    try:
        return await settled(services.settings.db, ids)
    finally:
        await pool.stop()
        await services.inbox.close()


@pytest.mark.parametrize(
    "failure",
    [PermanentError("GitHub GET /issues/9 failed with 422"), TypeError("unhashable type: 'dict'")],
    ids=["permanent", "unexpected"],
)
async def test_a_bad_delivery_between_good_ones_fails_alone(
    tmp_path: Path, session: aiohttp.ClientSession, failure: Exception
) -> None:
    handled: list[str] = []
    jobs: list[list[str]] = []
    router = _router({"bad": failure}, handled, jobs)
    rows = await _run(tmp_path, session, router, ["good-1", "bad", "good-2"])
    assert rows["good-1"]["status"] == "done" and rows["good-2"]["status"] == "done"
    assert rows["good-1"]["completions"] == 1 and rows["good-2"]["completions"] == 1
    assert rows["bad"]["status"] == "dead"
    assert str(failure) in rows["bad"]["last_error"]
    assert handled.count("good-1") == 1 and handled.count("good-2") == 1  # never run again
    assert len(jobs) == 1 and {"good-1", "good-2"} <= set(jobs[0])  # the coalesced job ran


async def test_a_rate_limited_delivery_goes_back_alone(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    handled: list[str] = []
    jobs: list[list[str]] = []
    limits = {"limited": RetryLater(0.05, "secondary rate limit")}
    router = routing.Router()
    inner = _router(limits, handled, jobs)

    @router.register("issues")
    async def once_limited(event: sansio.Event, ctx: EventContext) -> None:
        try:
            await inner.dispatch(event, ctx)
        finally:
            limits.pop("limited", None) if handled.count("limited") >= 1 else None

    rows = await _run(tmp_path, session, router, ["a", "limited", "b"])
    assert {r["status"] for r in rows.values()} == {"done"}
    assert handled.count("a") == 1 and handled.count("b") == 1
    assert handled.count("limited") == 2


async def test_a_failing_deferred_job_fails_only_the_deliveries_that_asked_for_it(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    router = routing.Router()

    @router.register("issues")
    async def handle(event: sansio.Event, ctx: EventContext) -> None:
        if ctx.delivery.id == "asks":

            async def broken() -> None:
                raise PermanentError("GitHub POST /labels failed with 422")

            ctx.defer(("labels", ctx.delivery.subject), broken)

    rows = await _run(tmp_path, session, router, ["quiet-1", "asks", "quiet-2"])
    assert rows["quiet-1"]["status"] == "done" and rows["quiet-2"]["status"] == "done"
    assert rows["asks"]["status"] == "dead" and "422" in rows["asks"]["last_error"]
