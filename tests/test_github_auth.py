"""App JWT and installation tokens, against the fake GitHub's token endpoint."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from bot.github import GitHubFactory, GitHubRequestError
from bot.github.auth import AppCredentials, InstallationTokenCache
from bot.observability.metrics import Metrics
from tests.conftest import FAST_RETRIES
from tests.fakegithub import FakeGitHub

REPO = "octo-org/widgets"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_app_jwt_is_signed_short_lived_and_reused(fake_github: FakeGitHub) -> None:
    clock = Clock(1000.0)
    credentials = AppCredentials(fake_github.app_id, fake_github.private_key_pem, clock=clock)
    token = credentials.jwt()
    public_key = serialization.load_pem_private_key(
        fake_github.private_key_pem.encode(), None
    ).public_key()
    claims = jwt.decode(token, public_key, algorithms=["RS256"])  # type: ignore[arg-type]
    assert claims["iss"] == str(fake_github.app_id)
    assert claims["exp"] - claims["iat"] <= 600  # GitHub's limit
    assert credentials.jwt() == token
    assert fake_github.private_key_pem not in repr(credentials)


async def test_fifty_concurrent_callers_share_one_token_request(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_issue(REPO, 1, title="One")
    fake_github.require_auth = True
    fake_github.latency = 0.02  # keep the token request in flight while the others arrive

    async def job() -> dict:
        client = await github_factory.for_installation(1)
        return await client.get_issue(REPO, 1)

    issues = await asyncio.gather(*(job() for _ in range(50)))
    assert {issue["title"] for issue in issues} == {"One"}
    assert len(fake_github.token_requests) == 1


async def test_token_is_refreshed_a_minute_before_it_expires(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(REPO, 1)
    fake_github.require_auth = True
    fake_github.token_ttl = 3600
    clock = Clock(time.time())
    async with aiohttp.ClientSession() as session:
        factory = GitHubFactory(
            fake_github.settings(), session, Metrics(), policy=FAST_RETRIES, clock=clock
        )
        client = await factory.for_installation(1)
        await client.get_issue(REPO, 1)
        clock.now += 3600 - 90  # still valid for 90 s: kept
        await client.get_issue(REPO, 1)
        assert len(fake_github.token_requests) == 1
        clock.now += 60  # within the last minute: refreshed before the next call
        await client.get_issue(REPO, 1)
    assert len(fake_github.token_requests) == 2
    assert 401 not in [r.status for r in fake_github.requests_to("GET", "/issues/1")]


async def test_token_revoked_mid_job_is_dropped_and_the_call_retried_once(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_issue(REPO, 1, title="Still here")
    fake_github.require_auth = True
    client = await github_factory.for_installation(1)
    await client.get_issue(REPO, 1)
    fake_github.expire_tokens()
    issue = await client.get_issue(REPO, 1)
    assert issue["title"] == "Still here"
    statuses = [r.status for r in fake_github.requests_to("GET", "/issues/1")]
    assert statuses == [200, 401, 304]  # 304: the ETag cache still holds the issue
    assert len(fake_github.token_requests) == 2


async def test_persistent_401_fails_after_one_retry_without_leaking_the_token(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_issue(REPO, 1)
    client = await github_factory.for_installation(1)
    fake_github.fail_next(5, status=401, path="/issues/1")
    with pytest.raises(GitHubRequestError) as caught:
        await client.get_issue(REPO, 1)
    assert caught.value.status == 401
    assert len(fake_github.requests_to("GET", "/issues/1")) == 2
    assert "ghs_" not in str(caught.value)
    assert "GET /repos/octo-org/widgets/issues/1" in str(caught.value)


async def test_unknown_installation_is_a_permanent_error(github_factory: GitHubFactory) -> None:
    with pytest.raises(GitHubRequestError) as caught:
        await github_factory.for_installation(999)
    assert caught.value.status == 404


async def test_invalidate_keeps_a_newer_token() -> None:
    issued = iter(["first", "second"])

    async def fetch(installation_id: int) -> dict:
        return {"token": next(issued), "expires_at": "2999-01-01T00:00:00Z"}

    cache = InstallationTokenCache(fetch)
    assert await cache.token(7) == "first"
    cache.invalidate(7, "first")
    assert await cache.token(7) == "second"
    cache.invalidate(7, "first")  # a late 401 for the old token
    assert await cache.token(7) == "second"
