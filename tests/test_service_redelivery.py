"""The running service asks GitHub to redeliver failed deliveries its inbox lacks."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bot.delivery.inbox import Inbox, describe
from bot.service import create_app
from tests.conftest import FAST_RETRIES
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import example


async def test_on_start_failed_deliveries_missing_from_the_inbox_are_redelivered(
    aiohttp_client: Any, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    settings = fake_github.settings(
        db=tmp_path / "bot.sqlite3", workers=1, redelivery_interval_minutes=60
    )
    # Our inbox already has one of the two failed deliveries (GitHub timed out after we stored it).
    stored = fake_github.add_delivery("guid-stored", status_code=504)
    missing = fake_github.add_delivery("guid-missing", status_code=502)
    fake_github.add_delivery("guid-fine", status_code=202)

    inbox = Inbox(settings.db)
    body = json.dumps(example("ping")).encode()
    assert await inbox.add(
        describe("ping", example("ping"), "guid-stored", body, now=time.time(), delay=0)
    )
    await inbox.close()

    await aiohttp_client(await create_app(settings, github_policy=FAST_RETRIES))

    deadline = time.monotonic() + 5
    while not fake_github.state.redelivery_requests and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert missing["id"] in fake_github.state.redelivery_requests
    await asyncio.sleep(0.2)
    assert fake_github.state.redelivery_requests == [missing["id"]]
    assert stored["id"] != missing["id"]
