"""GitHub App authentication: the App's JWT and per-installation access tokens.

Installation tokens live an hour; fetching one per job would double our request count
and hit GitHub's token endpoint under bursts, so they are cached until a minute before
they expire, and concurrent jobs for one installation share a single refresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cachetools import TLRUCache
from gidgethub import apps

# GitHub rejects App JWTs that live longer than 10 minutes; gidgethub backdates the
# issue time by a minute, so 9 minutes of validity with a refresh after 7 is safe.
JWT_LIFETIME_SECONDS = 9 * 60
JWT_REFRESH_AFTER_SECONDS = 7 * 60
TOKEN_REFRESH_MARGIN_SECONDS = 60.0


class Authorizer(Protocol):
    """Supplies the Authorization header for each attempt, and forgets one GitHub refused."""

    async def authorization(self) -> str: ...

    def invalidate(self, header: str) -> None: ...


class AppCredentials:
    """The App's id and private key, and a JWT reused until shortly before it expires."""

    def __init__(
        self, app_id: int | str, private_key: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app_id = str(app_id)
        self._private_key = private_key
        self._clock = clock
        self._jwt: str | None = None
        self._refresh_at = 0.0

    def __repr__(self) -> str:  # never show the key
        return f"AppCredentials(app_id={self.app_id!r})"

    def jwt(self) -> str:
        now = self._clock()
        if self._jwt is None or now >= self._refresh_at:
            self._jwt = apps.get_jwt(
                app_id=self.app_id, private_key=self._private_key, expiration=JWT_LIFETIME_SECONDS
            )
            self._refresh_at = now + JWT_REFRESH_AFTER_SECONDS
        return self._jwt

    def forget_jwt(self) -> None:
        self._jwt = None

    @property
    def private_key(self) -> str:
        return self._private_key


class AppJWTAuth:
    """Authorizer for /app endpoints: `Bearer <app JWT>`."""

    def __init__(self, credentials: AppCredentials) -> None:
        self._credentials = credentials

    async def authorization(self) -> str:
        return f"Bearer {self._credentials.jwt()}"

    def invalidate(self, header: str) -> None:
        self._credentials.forget_jwt()


@dataclass(frozen=True)
class InstallationToken:
    token: str
    expires_at: float  # epoch seconds
    refresh_at: float  # epoch seconds; the cache drops the entry then

    def __repr__(self) -> str:  # never show the token
        return f"InstallationToken(expires_at={self.expires_at})"


TokenFetcher = Callable[[int], Awaitable[dict[str, Any]]]


class InstallationTokenCache:
    """Installation tokens per installation id, refreshed `margin` seconds before expiry.

    `fetch(installation_id)` returns GitHub's token response (`token`, `expires_at`).
    One refresh at a time per installation: the other callers wait for it and reuse it.
    """

    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        margin: float = TOKEN_REFRESH_MARGIN_SECONDS,
        maxsize: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._tokens: TLRUCache[int, InstallationToken] = TLRUCache(
            maxsize=maxsize, ttu=lambda _key, value, _now: value.refresh_at, timer=clock
        )
        self._locks: dict[int, asyncio.Lock] = {}

    async def token(self, installation_id: int) -> str:
        cached = self._tokens.get(installation_id)
        if cached is not None:
            return cached.token
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached is not None:
                return cached.token
            fresh = self._parse(await self._fetch(installation_id))
            self._tokens[installation_id] = fresh
            return fresh.token

    def invalidate(self, installation_id: int, token: str) -> None:
        """Drop `token` if it is still the cached one (a newer one is kept)."""
        cached = self._tokens.get(installation_id)
        if cached is not None and cached.token == token:
            del self._tokens[installation_id]

    def _parse(self, response: dict[str, Any]) -> InstallationToken:
        expires_at = datetime.fromisoformat(response["expires_at"].replace("Z", "+00:00"))
        epoch = expires_at.timestamp()
        return InstallationToken(
            token=response["token"], expires_at=epoch, refresh_at=epoch - self._margin
        )


class InstallationAuth:
    """Authorizer for repository endpoints: `token <installation token>`."""

    def __init__(self, tokens: InstallationTokenCache, installation_id: int) -> None:
        self._tokens = tokens
        self.installation_id = installation_id

    async def authorization(self) -> str:
        return f"token {await self._tokens.token(self.installation_id)}"

    def invalidate(self, header: str) -> None:
        self._tokens.invalidate(self.installation_id, header.removeprefix("token "))
