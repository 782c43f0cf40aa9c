"""GitHub's web sign-in flow for the fake: authorize redirect, code exchange, user tokens.

GitHub serves these on the web host (github.com/login/oauth/...), not the REST API, so
they are answered before the REST routing and its OpenAPI conformance record. A test
picks who signs in next with `next_login`; GET /user answers for the user token.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CLIENT_ID = "Iv1.fakeoauthclient"
CLIENT_SECRET = "fake-oauth-client-secret"


class FakeOAuth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.next_login = "octocat"
            self.deny = False  # the user presses "Cancel" on GitHub's consent page
            self._codes: dict[str, str] = {}
            self._tokens: dict[str, str] = {}
            self.authorize_requests: list[dict[str, str]] = []

    def credentials(self) -> dict[str, str]:
        """Settings overrides that make the bot use this provider's client."""
        return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

    def login_for(self, authorization: str) -> str | None:
        """The login a user token belongs to (from an Authorization header)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        with self._lock:
            return self._tokens.get(token)

    async def handle(self, request: web.Request, path: str) -> web.Response:
        if path == "/login/oauth/authorize" and request.method == "GET":
            return self._authorize(request)
        if path == "/login/oauth/access_token" and request.method == "POST":
            return await self._exchange(request)
        return web.Response(status=404, text="Not Found")

    def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        with self._lock:
            self.authorize_requests.append(query)
            if query.get("client_id") != CLIENT_ID:
                return web.Response(status=404, text="unknown client_id")
            redirect = query.get("redirect_uri", "")
            answer: dict[str, str] = {"state": query.get("state", "")}
            if self.deny:
                answer["error"] = "access_denied"
            else:
                code = secrets.token_hex(10)
                self._codes[code] = self.next_login
                answer["code"] = code
        separator = "&" if "?" in redirect else "?"
        raise web.HTTPFound(redirect + separator + urlencode(answer))

    async def _exchange(self, request: web.Request) -> web.Response:
        fields: dict[str, Any]
        if request.content_type == "application/json":
            fields = await request.json()
        else:
            fields = dict(await request.post())
        with self._lock:
            login = self._codes.pop(str(fields.get("code")), None)
            if fields.get("client_id") != CLIENT_ID or fields.get("client_secret") != CLIENT_SECRET:
                answer: dict[str, str] = {"error": "incorrect_client_credentials"}
            elif login is None:
                answer = {"error": "bad_verification_code"}
            else:
                token = "gho_" + secrets.token_hex(18)
                self._tokens[token] = login
                answer = {"access_token": token, "token_type": "bearer", "scope": ""}
        # GitHub answers 200 even for errors, with an `error` field.
        if "json" in request.headers.get("Accept", ""):
            return web.json_response(answer)
        return web.Response(
            text=urlencode(answer), content_type="application/x-www-form-urlencoded"
        )
