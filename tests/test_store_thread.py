"""No SQLite call on the event loop: async code reaches the stores through one database thread.

Where a statement runs is observed with SQLite's own trace callback, which the sqlite3
module calls on the thread that executes the statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.mirror.related import find_related
from bot.models import Issue
from bot.store.mirror import AsyncMirrorStore, MirrorStore
from bot.store.thread import DatabaseThread
from bot.web.app import SERVICES
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import labeled, real_issue, seed, send, settled

REPO = "octo/widgets"


class StatementThreads:
    """The threads on which a connection ran statements."""

    def __init__(self) -> None:
        self.idents: set[int] = set()

    def watch(self, conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(lambda _sql: self.idents.add(threading.get_ident()))


@pytest.fixture
def database() -> Iterator[DatabaseThread]:
    thread = DatabaseThread()
    yield thread
    thread.close()


async def test_a_store_call_from_a_coroutine_runs_off_the_loop_thread(
    tmp_path: Path, database: DatabaseThread
) -> None:
    mirror = AsyncMirrorStore(MirrorStore(tmp_path / "bot.sqlite3"), database)
    seen = StatementThreads()
    seen.watch(mirror.sync.conn)
    await mirror.upsert_issue(Issue(repo=REPO, number=1, title="Crash on start"))
    assert (await mirror.get_issue(REPO, 1)) is not None
    await mirror.call(find_related, Issue(repo=REPO, number=2, title="Crash on start"))
    assert seen.idents  # the statements were seen ...
    assert threading.get_ident() not in seen.idents  # ... and none ran on the loop's thread
    assert len(seen.idents) == 1  # all on the one database thread
    mirror.close()


async def test_calls_run_one_at_a_time_in_the_order_they_were_made(
    database: DatabaseThread,
) -> None:
    order: list[int] = []
    running = threading.Lock()

    def step(i: int) -> int:
        assert running.acquire(blocking=False), "two calls ran at once"
        try:
            order.append(i)
            return threading.get_ident()
        finally:
            running.release()

    idents = await asyncio.gather(*(database.run(step, i) for i in range(50)))
    assert order == list(range(50))
    assert len(set(idents)) == 1 and threading.get_ident() not in idents


async def test_a_triage_delivery_runs_no_store_statement_on_the_event_loop(
    app_client: TestClient, fake_github: FakeGitHub
) -> None:
    services = app_client.app[SERVICES]
    seen = StatementThreads()
    seen.watch(services.mirror.sync.conn)
    for store in (services.artifacts, services.records, services.runs, services.outbox):
        seen.watch(store.sync._conn)
    number = seed(fake_github, real_issue("peft.export.json", 436))
    status, _, delivery = await send(
        app_client, "issues", labeled(number), secret=fake_github.webhook_secret
    )
    assert status == 202
    rows = await settled(services.settings.db, [delivery])
    assert rows[delivery]["status"] == "done", rows[delivery]["last_error"]
    assert seen.idents
    assert threading.get_ident() not in seen.idents
