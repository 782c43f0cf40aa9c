"""The GitHub operations handlers use, over gidgethub, with auth, retries and dry-run.

Handlers and their tests depend on `GitHubClient`'s methods, never on raw URLs. Every
HTTP attempt goes through `_ResilientAPI._request`, which adds the current credentials,
applies the fault policy of `faults.py` and counts the request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, MutableMapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import gidgethub.aiohttp
import gidgethub.sansio
from cachetools import LRUCache
from gidgethub import QueryError, apps

from bot.config.settings import Settings
from bot.crashpoints import crashpoint
from bot.errors import PermanentError, RetryLater
from bot.github.auth import (
    AppCredentials,
    AppJWTAuth,
    Authorizer,
    InstallationAuth,
    InstallationTokenCache,
)
from bot.github.faults import (
    GitHubRequestError,
    GitHubUnavailable,
    RateGate,
    RetryPolicy,
    UnknownOutcome,
    classify,
    repeatable,
)
from bot.observability.metrics import Metrics
from bot.store.actions import AsyncActionLog

if TYPE_CHECKING:
    Log = logging.Logger | logging.LoggerAdapter[Any]

module_log = logging.getLogger(__name__)

REQUESTER = "agent-dispatch"
API_HEADERS = {"x-github-api-version": "2022-11-28"}
PER_PAGE = 100
ROLES = ("admin", "maintain", "write", "triage", "read", "none")
DEFAULT_BOT_LOGIN = "agent-dispatch[bot]"


class GraphQLError(PermanentError):
    """The GraphQL response carried errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        messages = "; ".join(str(e.get("message", e)) for e in errors) or "unknown error"
        super().__init__(f"GitHub GraphQL query failed: {messages}")
        self.errors = errors


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", errors="replace").strip()
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message", ""))
    details = [
        e.get("message") or e.get("code") for e in data.get("errors") or [] if isinstance(e, dict)
    ]
    if details:
        message += " (" + "; ".join(str(d) for d in details if d) + ")"
    return message


class _ResilientAPI(gidgethub.aiohttp.GitHubAPI):
    """gidgethub's client with credentials per attempt and the retry policy."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        cache: MutableMapping[str, Any] | None,
        auth: Authorizer | None,
        gate: RateGate,
        policy: RetryPolicy,
        on_attempt: Callable[[str, str], None],
        log: Log,
    ) -> None:
        super().__init__(session, REQUESTER, cache=cache, base_url=base_url)
        self._auth = auth
        self._gate = gate
        self._policy = policy
        self._on_attempt = on_attempt
        self._log = log
        self._retry_warned = False

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = aiohttp.ClientTimeout(total=self._policy.request_timeout)
        async with self._session.request(
            method, url, headers=headers, data=body, timeout=timeout
        ) as response:
            return response.status, response.headers, await response.read()

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        policy = self._policy
        path = urlsplit(url).path
        headers = dict(headers)
        reauthenticated = False
        failures = 0
        waits = 0
        blind_retry = repeatable(method, path)
        while True:
            await self._gate.wait(policy)
            if self._auth is not None:
                headers["authorization"] = await self._auth.authorization()
            if method != "GET":
                crashpoint("github_write")
            try:
                status, response_headers, data = await self._send(method, url, headers, body)
                if method != "GET":
                    crashpoint("github_written")
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._on_attempt(method, "error")
                failures += 1
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                if not blind_retry and not isinstance(exc, aiohttp.ClientConnectorError):
                    raise UnknownOutcome(f"GitHub {method} {path}: {reason}") from exc
                if failures >= policy.max_attempts:
                    raise GitHubUnavailable(
                        f"GitHub {method} {path}: {reason} after {failures} attempts"
                    ) from exc
                await self._back_off(method, path, failures, reason)
                continue
            self._on_attempt(method, str(status))
            self._gate.observe(response_headers)
            message = _error_message(data) if status >= 400 else ""
            verdict = classify(status, response_headers, message, now=time.time())
            if verdict.action == "return":
                return status, response_headers, data
            if verdict.action == "reauth" and self._auth is not None and not reauthenticated:
                self._log.info("GitHub %s %s: 401, refreshing credentials once", method, path)
                self._auth.invalidate(headers["authorization"])
                reauthenticated = True
                continue
            if verdict.action == "wait":
                waits += 1
                if waits > policy.max_rate_limit_waits:
                    raise RetryLater(verdict.delay, f"GitHub {verdict.reason} on {method} {path}")
                self._log.warning(
                    "GitHub %s %s: %s, waiting %.1fs", method, path, verdict.reason, verdict.delay
                )
                self._gate.pause(verdict.delay, verdict.reason)
                continue
            if verdict.action == "backoff":
                if not blind_retry and status >= 500:
                    raise UnknownOutcome(f"GitHub {method} {path}: {verdict.reason}")
                failures += 1
                if failures >= policy.max_attempts:
                    raise GitHubUnavailable(
                        f"GitHub {method} {path}: {verdict.reason} after {failures} attempts"
                    )
                await self._back_off(method, path, failures, verdict.reason)
                continue
            raise GitHubRequestError(method, path, status, message or "no message")

    async def _back_off(self, method: str, path: str, attempt: int, reason: str) -> None:
        delay = self._policy.backoff(attempt)
        if self._retry_warned:  # one warning per client (a job): the rest at debug level
            self._log.debug(
                "GitHub %s %s: %s (attempt %d), retrying in %.2fs",
                method,
                path,
                reason,
                attempt,
                delay,
            )
        else:
            self._retry_warned = True
            self._log.warning(
                "GitHub %s %s: %s (attempt %d); retrying up to %d attempts with backoff, "
                "next in %.2fs (further retries of this job are logged at debug level)",
                method,
                path,
                reason,
                attempt,
                self._policy.max_attempts,
                delay,
            )
        await self._policy.sleep(delay)


def _split_repo(repo: str) -> dict[str, str]:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f"repository must be 'owner/name', got {repo!r}")
    return {"owner": owner, "repo": name}


def web_url(api_url: str) -> str:
    """The web host matching a REST base: api.github.com -> github.com, GHES drops /api/v3."""
    if urlsplit(api_url).hostname == "api.github.com":
        return "https://github.com"
    return api_url.removesuffix("/api/v3")


class GitHubClient:
    """The narrow set of GitHub operations the handlers use; `repo` is 'owner/name'.

    With a `recorder`, writes are recorded in the ActionLog (keyed by
    `idempotency_prefix` and a per-client counter) instead of sent; reads still go out.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        metrics: Metrics,
        base_url: str,
        graphql_url: str,
        auth: Authorizer | None = None,
        gate: RateGate | None = None,
        policy: RetryPolicy | None = None,
        cache: MutableMapping[str, Any] | None = None,
        recorder: AsyncActionLog | None = None,
        idempotency_prefix: str = "",
        bot_login: str = DEFAULT_BOT_LOGIN,
        log: Log | None = None,
    ) -> None:
        self.request_count = 0
        self._metrics = metrics
        self._graphql_url = graphql_url
        self._web_url = web_url(base_url)
        self._recorder = recorder
        self._prefix = idempotency_prefix
        self._writes = 0
        self._bot_login = bot_login
        self._log = log or module_log
        self.gh = _ResilientAPI(
            session,
            base_url=base_url,
            cache=cache,
            auth=auth,
            gate=gate or RateGate(),
            policy=policy or RetryPolicy(),
            on_attempt=self._count,
            log=self._log,
        )

    def _count(self, method: str, status: str) -> None:
        self.request_count += 1
        self._metrics.github_requests.labels(method=method, status=status).inc()

    async def _get(self, url: str, **url_vars: Any) -> Any:
        return await self.gh.getitem(url, url_vars, extra_headers=API_HEADERS)

    async def _get_all(self, url: str, **url_vars: Any) -> list[Any]:
        return [item async for item in self.gh.getiter(url, url_vars, extra_headers=API_HEADERS)]

    # Reads

    async def get_issue(self, repo: str, number: int) -> dict[str, Any]:
        return await self._get(
            "/repos/{owner}/{repo}/issues/{number}", **_split_repo(repo), number=number
        )

    async def list_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return await self._get_all(
            "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}",
            **_split_repo(repo),
            number=number,
            per_page=PER_PAGE,
        )

    async def list_timeline(self, repo: str, number: int) -> list[dict[str, Any]]:
        return await self._get_all(
            "/repos/{owner}/{repo}/issues/{number}/timeline{?per_page}",
            **_split_repo(repo),
            number=number,
            per_page=PER_PAGE,
        )

    async def get_permission(self, repo: str, username: str) -> str:
        """The user's role: admin, maintain, write, triage, read or none."""
        try:
            data = await self._get(
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                **_split_repo(repo),
                username=username,
            )
        except GitHubRequestError as exc:
            if exc.status == 404:
                return "none"
            raise
        role = data.get("role_name")
        if role in ROLES:
            return str(role)
        # A custom role: fall back to the base permission it grants.
        permission = data.get("permission")
        return str(permission) if permission in ROLES else "none"

    async def is_team_member(self, org: str, team_slug: str, username: str) -> bool:
        """Active membership of an org team; False when unknown (the App may lack Members: read)."""
        try:
            data = await self._get(
                "/orgs/{org}/teams/{team_slug}/memberships/{username}",
                org=org,
                team_slug=team_slug,
                username=username,
            )
        except GitHubRequestError as exc:
            if exc.status in (403, 404):
                return False
            raise
        return bool(data.get("state") == "active")

    async def get_file(self, repo: str, path: str, ref: str | None = None) -> str | None:
        """A file's decoded text; None when it is missing or not a regular file."""
        got = await self.get_blob_text(repo, path, ref)
        return got[0] if got else None

    async def get_blob_text(
        self, repo: str, path: str, ref: str | None = None
    ) -> tuple[str, str] | None:
        """A file's decoded text and its blob sha at `ref`; None when missing or not a file."""
        try:
            data = await self._get(
                "/repos/{owner}/{repo}/contents/{+path}{?ref}",
                **_split_repo(repo),
                path=path.lstrip("/"),
                ref=ref,
            )
        except GitHubRequestError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        if data.get("encoding") != "base64":  # files over 1 MB come without content
            module_log.warning("%s:%s has no inline content; ignoring it", repo, path)
            return None
        text = base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")
        return text, str(data.get("sha") or "")

    async def list_pull_files(self, repo: str, number: int, *, limit: int = 100) -> list[str]:
        """Paths a pull request changes (first page of the PR files API: up to 100)."""
        files = await self._get(
            "/repos/{owner}/{repo}/pulls/{number}/files{?per_page}",
            **_split_repo(repo),
            number=number,
            per_page=min(limit, PER_PAGE),
        )
        return [str(f["filename"]) for f in files if isinstance(f, dict) and "filename" in f]

    async def get_tree(
        self, repo: str, ref: str, *, etag: str | None = None
    ) -> tuple[dict[str, Any], str | None] | None:
        """The recursive git tree at `ref` (a tree sha or a branch) and its ETag.

        With `etag`, a conditional request: None when GitHub answers 304 (unchanged).
        """
        url = gidgethub.sansio.format_url(
            "/repos/{owner}/{repo}/git/trees/{tree_sha}?recursive=1",
            {**_split_repo(repo), "tree_sha": ref},
            base_url=self.gh.base_url,
        )
        headers = {
            **gidgethub.sansio.create_headers(REQUESTER, accept=gidgethub.sansio.accept_format()),
            **API_HEADERS,
        }
        if etag:
            headers["if-none-match"] = etag
        status, response_headers, body = await self.gh._request("GET", url, headers)
        if status == 304:
            return None
        if status != 200:
            raise GitHubRequestError("GET", urlsplit(url).path, status, _error_message(body))
        data = json.loads(body or b"{}")
        return (data if isinstance(data, dict) else {}), response_headers.get("etag")

    async def search_issues(self, query: str, *, limit: int = 30) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if limit <= 0:
            return items
        pages = self.gh.getiter(
            "/search/issues{?q,per_page}",
            {"q": query, "per_page": min(limit, PER_PAGE)},
            extra_headers=API_HEADERS,
        )
        async with aclosing(pages):
            async for item in pages:
                items.append(item)
                if len(items) >= limit:
                    break
        return items

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """The `data` of a GraphQL query; raises GraphQLError (or RetryLater) on errors."""
        try:
            data: dict[str, Any] = await self.gh.graphql(
                query, endpoint=self._graphql_url, **variables
            )
        except QueryError as exc:
            errors = exc.response.get("errors") or []
            if any(e.get("type") == "RATE_LIMITED" for e in errors if isinstance(e, dict)):
                raise RetryLater(60.0, "GitHub GraphQL rate limit") from exc
            raise GraphQLError(errors) from exc
        return data

    # Writes (recorded instead of sent in dry-run)

    async def _record(self, kind: str, subject: str, payload: dict[str, Any]) -> int:
        """Record one would-be write; returns a stable synthetic id for it."""
        assert self._recorder is not None
        self._writes += 1
        key = f"{self._prefix}:{self._writes}" if self._prefix else None
        await self._recorder.record("github", kind, subject, payload, key=key, logger=self._log)
        digest = hashlib.sha256(f"{key}:{subject}:{self._writes}".encode()).digest()
        return int.from_bytes(digest[:4], "big")

    def _synthetic_comment(self, repo: str, comment_id: int, body: str, number: int | None) -> dict:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        issue_path = f"/issues/{number}" if number is not None else "/issues"
        return {
            "id": comment_id,
            "body": body,
            "html_url": f"{self._web_url}/{repo}{issue_path}#issuecomment-{comment_id}",
            "user": {"login": self._bot_login, "type": "Bot"},
            "author_association": "NONE",
            "created_at": now,
            "updated_at": now,
            "dry_run": True,
        }

    async def create_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        if self._recorder is not None:
            comment_id = await self._record("create_comment", f"{repo}#{number}", {"body": body})
            return self._synthetic_comment(repo, comment_id, body, number)
        return await self.gh.post(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            {**_split_repo(repo), "number": number},
            data={"body": body},
            extra_headers=API_HEADERS,
        )

    async def update_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        if self._recorder is not None:
            await self._record("update_comment", repo, {"comment_id": comment_id, "body": body})
            return self._synthetic_comment(repo, comment_id, body, None)
        return await self.gh.patch(
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            {**_split_repo(repo), "comment_id": comment_id},
            data={"body": body},
            extra_headers=API_HEADERS,
        )

    async def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        if not labels:
            return
        if self._recorder is not None:
            await self._record("add_labels", f"{repo}#{number}", {"labels": list(labels)})
            return
        await self.gh.post(
            "/repos/{owner}/{repo}/issues/{number}/labels",
            {**_split_repo(repo), "number": number},
            data={"labels": list(labels)},
            extra_headers=API_HEADERS,
        )

    async def remove_label(self, repo: str, number: int, label: str) -> None:
        """Remove one label; a label that is not there is not an error."""
        if self._recorder is not None:
            await self._record("remove_label", f"{repo}#{number}", {"label": label})
            return
        try:
            await self.gh.delete(
                "/repos/{owner}/{repo}/issues/{number}/labels/{name}",
                {**_split_repo(repo), "number": number, "name": label},
                extra_headers=API_HEADERS,
            )
        except GitHubRequestError as exc:
            if exc.status != 404:
                raise

    async def get_label(self, repo: str, name: str) -> dict[str, Any] | None:
        """The repository's label `name` (GitHub matches names in any case); None if missing."""
        try:
            return await self._get(
                "/repos/{owner}/{repo}/labels/{name}", **_split_repo(repo), name=name
            )
        except GitHubRequestError as exc:
            if exc.status == 404:
                return None
            raise

    async def create_label(self, repo: str, name: str, color: str, description: str) -> bool:
        """Create a repository label; False when it exists already (422 already_exists)."""
        if self._recorder is not None:
            await self._record(
                "create_label", repo, {"name": name, "color": color, "description": description}
            )
            return True
        try:
            await self.gh.post(
                "/repos/{owner}/{repo}/labels",
                _split_repo(repo),
                data={"name": name, "color": color, "description": description},
                extra_headers=API_HEADERS,
            )
        except GitHubRequestError as exc:
            if exc.status == 422 and "already_exists" in exc.message:
                return False
            raise
        return True

    # App endpoints (need an App-authenticated client: GitHubFactory.app_client())

    async def get_app(self) -> dict[str, Any]:
        return await self._get("/app")

    async def list_installations(self) -> list[dict[str, Any]]:
        """The App's installations (needs the App's JWT: an app_client())."""
        return await self._get_all("/app/installations")

    async def get_repo_installation(self, repo: str) -> dict[str, Any]:
        """The App's installation on `repo` (its `id` is what for_installation takes)."""
        return await self._get("/repos/{owner}/{repo}/installation", **_split_repo(repo))

    async def iter_hook_deliveries(self) -> AsyncGenerator[dict[str, Any], None]:
        """The App's webhook deliveries, newest first, across all pages."""
        async for item in self.gh.getiter(
            "/app/hook/deliveries{?per_page}", {"per_page": PER_PAGE}, extra_headers=API_HEADERS
        ):
            yield item

    async def redeliver(self, delivery_id: int) -> None:
        await self.gh.post(
            "/app/hook/deliveries/{delivery_id}/attempts",
            {"delivery_id": delivery_id},
            data=b"",
            extra_headers=API_HEADERS,
        )


class GitHubFactory:
    """Builds clients that share one ETag cache, one token cache and rate-limit gates.

    Built once at start-up. With no App credentials (`settings.dry_run`) clients are
    unauthenticated and record their writes in `recorder`, which is then required. With
    credentials and a recorder, reads are authenticated and writes still recorded.
    `clock` is the wall clock the token cache judges expiry by (tests move it).
    """

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        metrics: Metrics,
        recorder: AsyncActionLog | None = None,
        *,
        policy: RetryPolicy | None = None,
        etag_cache_size: int = 2048,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.dry_run and recorder is None:
            raise ValueError("dry-run (no App credentials) needs an ActionLog to record writes")
        self._settings = settings
        self._session = session
        self._metrics = metrics
        self._recorder = recorder
        self._policy = policy or RetryPolicy()
        self._etags: LRUCache[str, Any] = LRUCache(maxsize=etag_cache_size)
        self._gates: dict[int | None, RateGate] = {}
        self._slug: str | None = None
        self._credentials: AppCredentials | None = None
        key = settings.app_private_key()
        if settings.app_id is not None and key is not None:
            self._credentials = AppCredentials(settings.app_id, key)
        self._tokens = InstallationTokenCache(self._fetch_token, clock=clock)
        self.token_client = self._client(auth=None, gate=self._gate(None))

    def rate_limits(self) -> dict[int | None, RateGate]:
        """Each identity's gate (None: the App itself), with the limit last reported."""
        return dict(self._gates)

    def _gate(self, installation_id: int | None) -> RateGate:
        gate = self._gates.get(installation_id)
        if gate is None:
            gate = self._gates[installation_id] = RateGate()
        return gate

    def _client(
        self,
        *,
        auth: Authorizer | None,
        gate: RateGate,
        recorder: AsyncActionLog | None = None,
        idempotency_prefix: str = "",
        log: Log | None = None,
    ) -> GitHubClient:
        assert self._settings.github_graphql_url is not None  # derived by Settings
        return GitHubClient(
            self._session,
            metrics=self._metrics,
            base_url=self._settings.github_api_url,
            graphql_url=self._settings.github_graphql_url,
            auth=auth,
            gate=gate,
            policy=self._policy,
            cache=self._etags,
            recorder=recorder,
            idempotency_prefix=idempotency_prefix,
            bot_login=f"{self._slug}[bot]" if self._slug else DEFAULT_BOT_LOGIN,
            log=log,
        )

    async def _fetch_token(self, installation_id: int) -> dict[str, Any]:
        assert self._credentials is not None
        return await apps.get_installation_access_token(
            self.token_client.gh,
            installation_id=str(installation_id),
            app_id=self._credentials.app_id,
            private_key=self._credentials.private_key,
        )

    async def for_installation(
        self, installation_id: int, *, idempotency_prefix: str = "", log: Log | None = None
    ) -> GitHubClient:
        """A client acting as the installation (token fetched now, refreshed as needed)."""
        if self._credentials is None:
            return self._client(
                auth=None,
                gate=self._gate(installation_id),
                recorder=self._recorder,
                idempotency_prefix=idempotency_prefix,
                log=log,
            )
        await self._tokens.token(installation_id)
        return self._client(
            auth=InstallationAuth(self._tokens, installation_id),
            gate=self._gate(installation_id),
            recorder=self._recorder,
            idempotency_prefix=idempotency_prefix,
            log=log,
        )

    def app_client(self) -> GitHubClient:
        """A client authenticated as the App (JWT), for /app endpoints."""
        if self._credentials is None:
            raise ValueError("no App credentials (dry-run): cannot act as the App")
        return self._client(auth=AppJWTAuth(self._credentials), gate=self._gate(None))

    async def bot_login(self) -> str | None:
        """The login the App writes comments as (None in dry-run, where it is unknown)."""
        slug = await self.app_slug()
        return f"{slug}[bot]" if slug else None

    async def app_slug(self) -> str | None:
        """The App's slug (GET /app, cached); the bot's login is f'{slug}[bot]'."""
        if self._slug is None and self._credentials is not None:
            app = await self.app_client().get_app()
            self._slug = str(app["slug"])
        return self._slug
