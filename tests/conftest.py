"""Shared fixtures. `fake_github`: the session's fake GitHub, reset for each test, with
every request the test made checked against GitHub's OpenAPI description afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.github import GitHubFactory, RetryPolicy
from bot.observability.metrics import Metrics
from bot.service import create_app
from bot.web.app import SERVICES
from tests.fakegithub import FakeGitHub, RecordedRequest, load_spec
from tests.fakeslack import FakeSlack
from tests.shared_data import report_header

# The running service (settings, bot_client) for every test module.
pytest_plugins = ["tests.service_fixtures"]


@pytest.fixture(scope="session")
def fake_github_server() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def fake_github(fake_github_server: FakeGitHub) -> Iterator[FakeGitHub]:
    fake_github_server.reset()
    yield fake_github_server
    assert_conformance(fake_github_server.requests)


def assert_conformance(requests: Iterable[RecordedRequest]) -> None:
    """Fail the test if any request would not be accepted by GitHub's REST API."""
    violations = load_spec().check(requests)
    if violations:
        pytest.fail(
            "requests that GitHub's REST API does not accept:\n" + "\n".join(violations),
            pytrace=False,
        )


FAST_RETRIES = RetryPolicy(
    max_attempts=4, backoff_base=0.01, backoff_max=0.05, max_wait=2.0, request_timeout=5.0
)


@pytest.fixture
async def github_factory(fake_github: FakeGitHub) -> AsyncIterator[GitHubFactory]:
    """A GitHubFactory for the fake's App, with retries shrunk to milliseconds."""
    async with aiohttp.ClientSession() as session:
        yield GitHubFactory(fake_github.settings(), session, Metrics(), policy=FAST_RETRIES)


@pytest.fixture
async def app_client(
    aiohttp_client: Any, fake_github: FakeGitHub, tmp_path: Path
) -> AsyncIterator[TestClient]:
    """The whole service on loopback, talking to the fake GitHub as an installed App."""
    settings = fake_github.settings(
        db=tmp_path / "bot.sqlite3", workers=2, debounce_seconds=0.0, retry_base_seconds=0.01
    )
    client: TestClient = await aiohttp_client(
        await create_app(settings, github_policy=FAST_RETRIES)
    )
    yield client


@pytest.fixture
def services_db(app_client: TestClient) -> Path:
    return app_client.app[SERVICES].settings.db


@pytest.fixture(scope="session")
def slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake_slack(slack_server: FakeSlack) -> FakeSlack:
    """The session's fake Slack, reset for each test."""
    slack_server.reset()
    return slack_server


def pytest_report_header() -> str:
    return report_header()
