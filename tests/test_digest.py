"""The candidates digest: when it is due (pure), and one outbox message per period."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.config.repo import SlackConfig
from bot.dashboard.app import DASHBOARD
from bot.dashboard.candidates import rank
from bot.dashboard.digest import DigestScheduler, digest_message, due_key
from bot.notify.outbox import Outbox
from bot.service import create_app
from tests.conftest import FAST_RETRIES
from tests.dashboard_env import prepare
from tests.dashboard_seed import NOW, PRIVATE, PUBLIC, seed_small
from tests.fakegithub import FakeGitHub

MONDAY_8 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TUESDAY_3 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
SUNDAY_23 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)

DUE = [
    ("off", 9, MONDAY_9, None),
    ("daily", 9, MONDAY_8, None),
    ("daily", 9, MONDAY_9, "digest:o/r:2026-11-30"),
    ("daily", 0, TUESDAY_3, "digest:o/r:2026-12-01"),
    ("weekly", 9, MONDAY_8, None),
    ("weekly", 9, MONDAY_9, "digest:o/r:2026-W49"),
    ("weekly", 9, TUESDAY_3, "digest:o/r:2026-W49"),  # the same week: the same key
    ("weekly", 9, SUNDAY_23, "digest:o/r:2026-W49"),
]


@pytest.mark.parametrize("cadence, hour, now, key", DUE)
def test_due_key(cadence: str, hour: int, now: datetime, key: str | None) -> None:
    slack = SlackConfig(digest=cadence, digest_hour=hour)  # type: ignore[arg-type]
    assert due_key("o/r", slack, now) == key


def test_the_digest_is_off_unless_configured() -> None:
    assert SlackConfig().digest == "off"


def test_message_lists_candidates_with_reasons_and_escapes_titles(tmp_path: Path) -> None:
    from bot.store.dashboard import DashboardQueries

    db = tmp_path / "bot.sqlite3"
    seed_small(db)
    queries = DashboardQueries(db)
    ranked = rank(queries.candidate_facts(PUBLIC), now=NOW, limit=2)
    queries.close()
    message = digest_message(PUBLIC, ranked, dashboard_url="https://bot.example/ui/candidates")
    text = message["blocks"][1]["text"]["text"]
    assert text.startswith("1. *<https://github.com/octo-org/widgets/issues/1|#1 8-bit Adam")
    assert "label 'high priority'; 14 reactions" in text and "2. *<" in text
    assert message["text"] == f"Dispatch candidates: {PUBLIC}: #1, #2"


@pytest.fixture
async def service(
    aiohttp_client: Any, fake_github: FakeGitHub, tmp_path: Path
) -> AsyncIterator[TestClient]:
    settings = prepare(fake_github, tmp_path, slack_channel="#agents")
    fake_github.set_file(
        PUBLIC,
        ".github/agent-dispatch.yml",
        "slack:\n  digest: daily\n  digest_hour: 9\n  digest_size: 2\n",
    )
    yield await aiohttp_client(await create_app(settings, github_policy=FAST_RETRIES))


async def test_one_digest_per_period_across_restarts(service: TestClient) -> None:
    dashboard = service.app[DASHBOARD]
    assert await DigestScheduler(dashboard).tick(MONDAY_8) == []  # before the hour
    assert await DigestScheduler(dashboard).tick(MONDAY_9) == [f"digest:{PUBLIC}:2026-11-30"]
    # A second tick, and a new scheduler as after a restart: nothing more this period.
    assert await DigestScheduler(dashboard).tick(MONDAY_9) == []
    assert await DigestScheduler(dashboard).tick(datetime(2026, 11, 30, 23, tzinfo=UTC)) == []
    assert await DigestScheduler(dashboard).tick(TUESDAY_3) == []  # not yet Tuesday's hour
    outbox = Outbox(dashboard.settings.db)
    try:
        digests = [m for m in outbox.messages(limit=100) if m.kind == "digest"]
    finally:
        outbox.close()
    [digest] = digests
    assert digest.repo == PUBLIC and digest.channel == "#agents"  # the private repo: off
    assert digest.message["text"] == f"Dispatch candidates: {PUBLIC}: #1, #2"
    assert PRIVATE not in str(digest.message)
