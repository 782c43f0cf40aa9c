"""The world the dashboard tests run in: a seeded database and a fake GitHub that knows
who may read and dispatch what, with its OAuth provider for signing in."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient

from bot.config.settings import Settings
from tests.dashboard_seed import PRIVATE, PUBLIC, seed_small
from tests.fakegithub import FakeGitHub

MAINTAINER = "mona"  # maintain on the public repo, admin on the private one, an operator
READER = "reader"  # nobody special: reads the public repository only
FAST_CONFIG = "dispatch:\n  batch_window_seconds: 0\n"


def prepare(fake: FakeGitHub, tmp_path: Path, **overrides: Any) -> Settings:
    """Seed the database and the fake; settings for a service that signs in through it."""
    db = tmp_path / "bot.sqlite3"
    seed_small(db)
    fake.add_repo(PUBLIC)
    fake.add_repo(PRIVATE, private=True)
    fake.set_permission(PUBLIC, MAINTAINER, "maintain")
    fake.set_permission(PRIVATE, MAINTAINER, "admin")
    fake.set_file(PUBLIC, ".github/agent-dispatch.yml", FAST_CONFIG)
    for number, title in ((1, "8-bit Adam crashes on CPU"), (2, "LARS missing"), (3, "Noisy")):
        fake.add_issue(PUBLIC, number, title=title, body="Traceback ...")
    fake.add_issue(PRIVATE, 1, title="Secret kernel regression")
    values: dict[str, Any] = {
        "db": db,
        "workers": 2,
        "debounce_seconds": 0.0,
        "retry_base_seconds": 0.01,
        "operators": MAINTAINER,
        **fake.oauth.credentials(),
    }
    values.update(overrides)
    settings: Settings = fake.settings(**values)
    return settings


async def sign_in(client: TestClient, fake: FakeGitHub, login: str) -> None:
    """The whole web flow through the fake provider, as a browser would follow it."""
    fake.oauth.next_login = login
    start = await client.get("/ui/auth/start", allow_redirects=False)
    assert start.status == 303, await start.text()
    async with client.session.get(start.headers["Location"], allow_redirects=False) as github:
        assert github.status == 302
        back = urlsplit(github.headers["Location"])
    done = await client.get(f"/ui/auth/callback?{back.query}", allow_redirects=False)
    assert done.status == 303, await done.text()
    assert parse_qs(back.query)["state"]
