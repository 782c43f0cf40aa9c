"""Sign-in with GitHub for the dashboard, its signed session cookie, CSRF tokens, access.

The session cookie holds only the login, a random session id and an expiry, signed with
a key derived from the webhook secret (the same way artifact links are signed); the
user's OAuth token is used once to learn who signed in and then dropped. What a user
may see is asked of GitHub through the App's installation, never through the user's
token, and cached for a few minutes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from cachetools import TTLCache

from bot.config.settings import Settings
from bot.dispatch.job import PERMISSION_RANK

SESSION_COOKIE = "ad_session"
STATE_COOKIE = "ad_oauth_state"
SESSION_SECONDS = 8 * 3600
STATE_SECONDS = 600
ACCESS_CACHE_SECONDS = 300
KEY_LABEL = b"agent-dispatch dashboard sessions v1"


@dataclass(frozen=True)
class Session:
    login: str
    sid: str
    expires: int


class SessionSigner:
    """Signs small JSON values into cookie-safe strings; refuses tampered or expired ones."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, purpose: str, payload: bytes) -> str:
        digest = hmac.new(self._key, purpose.encode() + b"\n" + payload, hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def sign(self, purpose: str, value: dict[str, object]) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode())
        return payload.decode().rstrip("=") + "." + self._mac(purpose, payload.rstrip(b"="))

    def unsign(
        self, purpose: str, token: str | None, *, now: float | None = None
    ) -> dict[str, object] | None:
        if not token or token.count(".") != 1 or len(token) > 4096:
            return None
        payload, mac = token.split(".")
        if not hmac.compare_digest(self._mac(purpose, payload.encode()), mac):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        expires = value.get("exp") if isinstance(value, dict) else None
        if not isinstance(expires, int) or expires < (time.time() if now is None else now):
            return None
        return value

    def new_session(self, login: str, *, now: float | None = None) -> tuple[Session, str]:
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        session = Session(login=login, sid=secrets.token_urlsafe(16), expires=expires)
        return session, self.sign("session", {"login": login, "sid": session.sid, "exp": expires})

    def session(self, token: str | None) -> Session | None:
        value = self.unsign("session", token)
        if value is None:
            return None
        login, sid, expires = value.get("login"), value.get("sid"), value.get("exp")
        if not isinstance(login, str) or not isinstance(sid, str) or not isinstance(expires, int):
            return None
        return Session(login=login, sid=sid, expires=expires)

    def csrf_token(self, session: Session) -> str:
        """Bound to the session: a token from another session (or none) is refused."""
        return self._mac("csrf", session.sid.encode())

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))


class SignInError(Exception):
    """GitHub refused the sign-in (denied consent, a bad or reused code)."""


class GitHubOAuth:
    """The web flow with the App's own client id and secret."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        assert settings.client_id and settings.client_secret and settings.github_web_url
        self._client_id = settings.client_id
        self._client_secret = settings.client_secret.get_secret_value()
        self._web = settings.github_web_url
        self._api = settings.github_api_url
        self._session = session

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        query = urlencode(
            {"client_id": self._client_id, "redirect_uri": redirect_uri, "state": state}
        )
        return f"{self._web}/login/oauth/authorize?{query}"

    async def login_for_code(self, code: str, *, redirect_uri: str) -> str:
        """Exchange the code for a user token, ask who it is, and forget the token."""
        timeout = aiohttp.ClientTimeout(total=15)
        async with self._session.post(
            f"{self._web}/login/oauth/access_token",
            data={
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "code": code,
                "redirect_uri": redirect_uri,
            },
            headers={"Accept": "application/json"},
            timeout=timeout,
        ) as response:
            answer = await response.json(content_type=None)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if response.status != 200 or not isinstance(token, str):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise SignInError(str(error or f"HTTP {response.status}"))
        async with self._session.get(
            f"{self._api}/user",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "User-Agent": "agent-dispatch",
            },
            timeout=timeout,
        ) as response:
            user = await response.json(content_type=None)
        login = user.get("login") if isinstance(user, dict) else None
        if response.status != 200 or not isinstance(login, str):
            raise SignInError(f"GET /user answered HTTP {response.status}")
        return login


RoleLookup = Callable[[str, str], Awaitable[str]]


class AccessCache:
    """A user's role on a repository, asked through the installation, kept for minutes."""

    def __init__(self, lookup: RoleLookup, *, ttl: float = ACCESS_CACHE_SECONDS) -> None:
        self._lookup = lookup
        self._roles: TTLCache[tuple[str, str], str] = TTLCache(maxsize=20_000, ttl=ttl)

    async def role(self, login: str, repo: str) -> str:
        key = (login.lower(), repo)
        cached = self._roles.get(key)
        if cached is None:
            cached = await self._lookup(login, repo)
            self._roles[key] = cached
        return cached

    async def readable(self, login: str, repos: list[str]) -> list[str]:
        """The repositories `login` may read (read role or higher)."""
        roles = await asyncio.gather(*(self.role(login, repo) for repo in repos))
        return [
            repo
            for repo, role in zip(repos, roles, strict=True)
            if PERMISSION_RANK.get(role, 0) >= PERMISSION_RANK["read"]
        ]
