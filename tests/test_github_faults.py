"""Rate limits and faults: the decision table, and each fault recovered on the fake GitHub."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.errors import PermanentError, RetryLater
from bot.github import GitHubClient, GitHubFactory, GitHubRequestError, GitHubUnavailable
from bot.github.faults import RateGate, RetryPolicy, Verdict, classify
from bot.observability.metrics import Metrics
from tests.conftest import FAST_RETRIES
from tests.fakegithub import FakeGitHub

REPO = "octo-org/widgets"
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "headers", "message", "expected"),
    [
        (200, {}, "", Verdict("return")),
        (304, {}, "", Verdict("return")),
        (
            200,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW + 30)},
            "",
            Verdict("return"),
        ),
        (401, {}, "Bad credentials", Verdict("reauth", reason="bad credentials")),
        (
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW + 30)},
            "API rate limit exceeded",
            Verdict("wait", 30.0, "primary rate limit exhausted"),
        ),
        (
            429,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW - 5)},
            "",
            Verdict("wait", 0.0, "primary rate limit exhausted"),
        ),
        (403, {"retry-after": "7"}, "secondary", Verdict("wait", 7.0, "secondary rate limit")),
        (429, {"retry-after": "2"}, "", Verdict("wait", 2.0, "secondary rate limit")),
        (
            403,
            {"x-ratelimit-remaining": "12"},
            "You have exceeded a secondary rate limit",
            Verdict("wait", 60.0, "secondary rate limit"),
        ),
        (429, {}, "", Verdict("backoff", reason="too many requests")),
        (
            403,
            {"x-ratelimit-remaining": "4000"},
            "Resource not accessible by integration",
            Verdict("fail"),
        ),
        (404, {}, "Not Found", Verdict("fail")),
        (422, {}, "Validation Failed", Verdict("fail")),
        (500, {}, "", Verdict("backoff", reason="server error 500")),
        (502, {}, "", Verdict("backoff", reason="server error 502")),
        (503, {"retry-after": "1"}, "", Verdict("backoff", reason="server error 503")),
    ],
)
def test_classify(status: int, headers: dict, message: str, expected: Verdict) -> None:
    assert classify(status, headers, message, now=NOW) == expected


def test_backoff_is_jittered_and_bounded() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    for attempt in range(1, 10):
        delays = [policy.backoff(attempt) for _ in range(50)]
        ceiling = min(5.0, 2 ** (attempt - 1))
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


async def test_gate_sleeps_for_short_waits_and_hands_long_ones_back() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(max_wait=60.0, sleep=sleep)
    gate = RateGate(clock=lambda: NOW)
    await gate.wait(policy)
    gate.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW + 20)})
    await gate.wait(policy)
    assert slept == [20.0]
    gate.block(NOW + 600, "secondary rate limit")
    with pytest.raises(RetryLater) as caught:
        await gate.wait(policy)
    assert caught.value.delay == 600.0
    assert "secondary rate limit" in caught.value.reason


@pytest.fixture
async def client(fake_github: FakeGitHub, github_factory: GitHubFactory) -> GitHubClient:
    fake_github.add_issue(REPO, 1, title="Flaky")
    return await github_factory.for_installation(1)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried(
    fake_github: FakeGitHub, client: GitHubClient, status: int
) -> None:
    fake_github.fail_next(2, status=status, path="/issues/1")
    assert (await client.get_issue(REPO, 1))["title"] == "Flaky"
    assert [r.status for r in fake_github.requests_to("GET", "/issues/1")] == [status, status, 200]
    assert client.request_count == 3


async def test_server_errors_give_up_after_the_attempt_budget(
    fake_github: FakeGitHub, client: GitHubClient
) -> None:
    fake_github.fail_next(10, status=502, path="/issues/1")
    with pytest.raises(GitHubUnavailable, match="502"):
        await client.get_issue(REPO, 1)
    assert len(fake_github.requests_to("GET", "/issues/1")) == FAST_RETRIES.max_attempts


async def test_dropped_connections_are_retried(
    fake_github: FakeGitHub, client: GitHubClient
) -> None:
    fake_github.drop_next(2, path="/issues/1")
    assert (await client.get_issue(REPO, 1))["title"] == "Flaky"
    assert [r.status for r in fake_github.requests_to("GET", "/issues/1")] == [0, 0, 200]


async def test_timeouts_are_retried(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(REPO, 1, title="Slow")
    fake_github.slow_next(1, delay=0.5, path="/issues/1")
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, request_timeout=0.2)
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        factory = GitHubFactory(fake_github.settings(), session, metrics, policy=policy)
        client = await factory.for_installation(1)
        assert (await client.get_issue(REPO, 1))["title"] == "Slow"
    assert client.request_count == 2
    sample = metrics.registry.get_sample_value
    assert sample("agent_dispatch_github_requests_total", {"method": "GET", "status": "error"}) == 1


@pytest.mark.parametrize("status", [403, 429])
async def test_secondary_limit_waits_retry_after(
    fake_github: FakeGitHub, client: GitHubClient, status: int
) -> None:
    fake_github.secondary_limit(1, retry_after=0.2, status=status, path="/comments")
    started = time.monotonic()
    comment = await client.create_comment(REPO, 1, "posted once")
    assert time.monotonic() - started >= 0.2
    assert comment["body"] == "posted once"
    assert [c["body"] for c in fake_github.comments_of(REPO, 1)] == ["posted once"]
    assert [r.status for r in fake_github.requests_to("POST", "/comments")] == [status, 201]


async def test_primary_limit_waits_until_reset(
    fake_github: FakeGitHub, client: GitHubClient
) -> None:
    fake_github.exhaust_primary(1, reset_in=0.3, path="/issues/1")
    started = time.monotonic()
    assert (await client.get_issue(REPO, 1))["title"] == "Flaky"
    assert time.monotonic() - started >= 0.25
    assert [r.status for r in fake_github.requests_to("GET", "/issues/1")] == [403, 200]


async def test_long_primary_limit_goes_back_to_the_worker(
    fake_github: FakeGitHub, github_factory: GitHubFactory, client: GitHubClient
) -> None:
    fake_github.exhaust_primary(1, reset_in=120, path="/issues/1")
    with pytest.raises(RetryLater) as caught:
        await client.get_issue(REPO, 1)
    assert 100 < caught.value.delay <= 121
    # The next job on this installation waits too, without spending a request to learn it.
    other = await github_factory.for_installation(1)
    with pytest.raises(RetryLater):
        await other.get_issue(REPO, 1)
    assert len(fake_github.requests_to("GET", "/issues/1")) == 1


async def test_repeated_rate_limits_are_bounded(
    fake_github: FakeGitHub, client: GitHubClient
) -> None:
    fake_github.secondary_limit(10, retry_after=0.01, path="/issues/1")
    with pytest.raises(RetryLater):
        await client.get_issue(REPO, 1)
    assert len(fake_github.requests_to("GET", "/issues/1")) == FAST_RETRIES.max_rate_limit_waits + 1


@pytest.mark.parametrize("status", [400, 403, 404, 410, 422])
async def test_other_client_errors_fail_at_once_with_a_clear_message(
    fake_github: FakeGitHub, client: GitHubClient, status: int
) -> None:
    fake_github.fail_next(1, status=status, path="/comments")
    with pytest.raises(PermanentError) as caught:
        await client.create_comment(REPO, 1, "nope")
    error = caught.value
    assert isinstance(error, GitHubRequestError)
    assert (error.method, error.path, error.status) == (
        "POST",
        f"/repos/{REPO}/issues/1/comments",
        status,
    )
    assert f"POST /repos/{REPO}/issues/1/comments failed with {status}" in str(error)
    assert "ghs_" not in str(error)
    assert len(fake_github.requests_to("POST", "/comments")) == 1


async def test_missing_issue_reports_githubs_message(client: GitHubClient) -> None:
    with pytest.raises(GitHubRequestError, match="404: Not Found"):
        await client.get_issue(REPO, 404)


async def test_token_endpoint_faults_are_retried_too(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_issue(REPO, 1)
    fake_github.fail_next(1, status=502, path="/access_tokens")
    client = await github_factory.for_installation(1)
    await client.get_issue(REPO, 1)
    assert [r.status for r in fake_github.token_requests] == [502, 201]
