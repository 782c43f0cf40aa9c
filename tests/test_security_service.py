"""Issue 14 against the running service: signed deliveries, the fake GitHub, loopback HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request

import pytest
from aiohttp.test_utils import TestClient

from bot.web.app import SERVICES
from tests.fakegithub import FakeGitHub
from tests.hostile_shapes import HOSTILE_SHAPES
from tests.service_fixtures import REPO, real_issue, seed, send, settled
from tests.test_dispatch_flow import comment_payload

OUTSIDER = "mallory"
# The issue's budget; a liveness probe with a 3 s timeout is far more forgiving.
HEALTHZ_BUDGET_SECONDS = 0.100
IDLE_PROBE_SECONDS = 1.0


def slowest_healthz(url: str, probing: threading.Event, stop: threading.Event) -> float:
    """The slowest /healthz answer until `stop`, probing every 10 ms from another thread.

    Latency counts from when each probe was due, so a stall that also holds the GIL (a
    regular expression does) is measured as a liveness probe from outside would see it.
    """
    slowest = 0.0
    due = time.perf_counter()
    while not stop.is_set():
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
        answered = time.perf_counter()
        slowest = max(slowest, answered - due)
        probing.set()
        due = answered + 0.01
        stop.wait(0.01)
    return slowest


@pytest.mark.parametrize("shape", ["backtick fence openers", "tilde fence openers"])
async def test_healthz_answers_while_a_hostile_comment_is_processed(
    app_client: TestClient, fake_github: FakeGitHub, shape: str
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    body = HOSTILE_SHAPES[shape]
    fake_github.add_comment(REPO, number, body, user=OUTSIDER)
    url = str(app_client.make_url("/healthz"))
    loop = asyncio.get_running_loop()
    # The same probe on the idle service first: what the machine's load costs anyway, so
    # the budget below measures only what the hostile comment adds.
    probing, stop = threading.Event(), threading.Event()
    idle_probe = loop.run_in_executor(None, slowest_healthz, url, probing, stop)
    await asyncio.sleep(IDLE_PROBE_SECONDS)
    stop.set()
    idle = await idle_probe
    probing, stop = threading.Event(), threading.Event()
    probe = loop.run_in_executor(None, slowest_healthz, url, probing, stop)
    try:
        while not probing.is_set():
            await asyncio.sleep(0.005)
        status, _, delivery = await send(
            app_client,
            "issue_comment",
            comment_payload(number, body, OUTSIDER, 7001),
            secret=fake_github.webhook_secret,
        )
        assert status == 202
        rows = await settled(app_client.app[SERVICES].settings.db, [delivery], timeout=30)
    finally:
        stop.set()
    slowest = await probe
    assert rows[delivery]["status"] == "done", rows[delivery]["last_error"]
    assert slowest < idle + HEALTHZ_BUDGET_SECONDS, (
        f"/healthz took {slowest * 1000:.0f} ms (idle: {idle * 1000:.0f} ms)"
    )
