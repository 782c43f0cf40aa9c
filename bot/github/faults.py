"""What to do with each GitHub response: return it, wait, back off, re-authenticate or fail.

The decision is a pure function of the status and headers (`classify`), so the policy
is tested as a table; `client.py` carries it out.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from bot.errors import PermanentError, RetryLater

# GitHub's advice for a secondary limit that names no retry-after: wait at least a minute.
SECONDARY_LIMIT_DEFAULT_WAIT = 60.0


class GitHubRequestError(PermanentError):
    """GitHub refused the request (a 4xx other than rate limits); retrying cannot help."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"GitHub {method} {path} failed with {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class GitHubUnavailable(Exception):
    """GitHub kept failing (5xx, connection errors, timeouts) after every attempt.

    Neither permanent nor a known wait: the worker's own retry schedule applies.
    """


class UnknownOutcome(GitHubUnavailable):
    """A write that is not safe to repeat may or may not have been applied.

    GitHub answered 5xx or the connection broke after the request was sent: the write
    may be in place (a load balancer lost the answer). The caller reads back before
    writing again (see comments.upsert).
    """


# POST endpoints the bot calls that do no more when sent twice than once: queries,
# adding labels (a set), token minting, asking for a redelivery (the inbox drops doubles).
REPEATABLE_POSTS = ("/graphql", "/labels", "/access_tokens", "/attempts")


def repeatable(method: str, path: str) -> bool:
    """Whether blindly sending the request again is harmless (every method but POST is)."""
    return method != "POST" or path.rstrip("/").endswith(REPEATABLE_POSTS)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop; tests shrink them to keep retries fast."""

    max_attempts: int = 5  # per request, for 5xx, connection errors and timeouts
    backoff_base: float = 0.5  # first backoff ceiling, doubled per attempt
    backoff_max: float = 20.0
    max_wait: float = 60.0  # longer rate-limit waits go back to the worker (RetryLater)
    max_rate_limit_waits: int = 3  # per request
    request_timeout: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


Action = Literal["return", "wait", "backoff", "reauth", "fail"]


@dataclass(frozen=True)
class Verdict:
    action: Action
    delay: float = 0.0
    reason: str = ""


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def exhausted_until(headers: Mapping[str, str]) -> float | None:
    """Epoch when the primary limit resets, if this response says it is used up."""
    if headers.get("x-ratelimit-remaining") != "0":
        return None
    return _header_float(headers, "x-ratelimit-reset")


def classify(status: int, headers: Mapping[str, str], message: str, *, now: float) -> Verdict:
    """Decide the next step for one response; `message` is GitHub's error message, if any."""
    if status < 400:
        return Verdict("return")
    if status == 401:
        return Verdict("reauth", reason="bad credentials")
    if status in (403, 429):
        reset = exhausted_until(headers)
        if reset is not None:
            return Verdict("wait", max(0.0, reset - now), "primary rate limit exhausted")
        retry_after = _header_float(headers, "retry-after")
        if retry_after is not None:
            return Verdict("wait", max(0.0, retry_after), "secondary rate limit")
        if "secondary rate limit" in message.lower():
            return Verdict("wait", SECONDARY_LIMIT_DEFAULT_WAIT, "secondary rate limit")
        if status == 429:
            return Verdict("backoff", reason="too many requests")
        return Verdict("fail")
    if status >= 500:
        return Verdict("backoff", reason=f"server error {status}")
    return Verdict("fail")


class RateGate:
    """Holds requests back while a rate limit is in force for one identity.

    Shared by every client of one installation (or of the App), so a job that hits the
    limit keeps the next job from spending a request to learn the same thing.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.blocked_until = 0.0
        self.reason = ""
        # The primary limit as the last response reported it (the dashboard shows it).
        self.remaining: int | None = None
        self.limit: int | None = None
        self.resets_at: float | None = None

    def block(self, until: float, reason: str) -> None:
        if until > self.blocked_until:
            self.blocked_until = until
            self.reason = reason

    def pause(self, seconds: float, reason: str) -> None:
        self.block(self._clock() + seconds, reason)

    def observe(self, headers: Mapping[str, str]) -> None:
        remaining = _header_float(headers, "x-ratelimit-remaining")
        if remaining is not None:
            self.remaining = int(remaining)
            limit = _header_float(headers, "x-ratelimit-limit")
            self.limit = None if limit is None else int(limit)
            self.resets_at = _header_float(headers, "x-ratelimit-reset")
        reset = exhausted_until(headers)
        if reset is not None:
            self.block(reset, "primary rate limit exhausted")

    async def wait(self, policy: RetryPolicy) -> None:
        """Sleep until the limit lifts, or raise RetryLater when that is too long."""
        delay = self.blocked_until - self._clock()
        if delay <= 0:
            return
        if delay > policy.max_wait:
            raise RetryLater(delay, f"GitHub {self.reason}; resets in {delay:.0f}s")
        await policy.sleep(delay)
