"""The dashboard under /ui/: server-rendered pages for maintainers and operators.

Every page needs a GitHub sign-in. A user sees a repository only with read access to
it (asked through the App's installation, cached for minutes); the dispatch button
appears only for users the label gate would let through; deliveries and the outbox are
for the operators named in settings. Pages are plain HTML from jinja2 templates, with
one vendored stylesheet and no script; every form carries a CSRF token.

Dispatching from the dashboard applies the repository's `dispatch` label as the App and
hands the inbox the same `issues.labeled` delivery GitHub would send with the signed-in
maintainer as its sender, so the label handler's gate and flow decide, as for a label
applied on GitHub. (GitHub's own delivery of that label names the App as sender, and
the handler ignores the App's own labels.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlencode

import aiohttp
import jinja2
from aiohttp import web
from cachetools import TTLCache

from bot.config.settings import Settings
from bot.dashboard import views
from bot.dashboard.auth import (
    ACCESS_CACHE_SECONDS,
    SESSION_COOKIE,
    STATE_COOKIE,
    STATE_SECONDS,
    AccessCache,
    GitHubOAuth,
    Session,
    SessionSigner,
    SignInError,
)
from bot.dashboard.candidates import rank
from bot.dashboard.digest import DigestScheduler
from bot.delivery.context import Services
from bot.delivery.inbox import describe
from bot.dispatch.job import Requester, may_dispatch
from bot.errors import PermanentError
from bot.github import GitHubClient, GitHubUnavailable
from bot.models import Verdict
from bot.notify.outbox import Outbox
from bot.store.artifacts import ArtifactStore
from bot.store.dashboard import DashboardQueries
from bot.store.inbox import STATUSES as DELIVERY_STATUSES
from bot.store.inbox import InboxQueries
from bot.store.outbox import STATUSES as OUTBOX_STATUSES

log = logging.getLogger(__name__)

PREFIX = "/ui"
MAX_PAGE = 1000
VERDICTS: tuple[str, ...] = Verdict.__args__  # type: ignore[attr-defined]
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
T = TypeVar("T")


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = views.when
    env.filters["age"] = views.age
    return env


class Stores(NamedTuple):
    """The dashboard's own connections, opened and used on its database thread only."""

    queries: DashboardQueries
    artifacts: ArtifactStore
    inbox: InboxQueries
    outbox: Outbox


class Dashboard:
    """The pages' state: stores on a thread of their own, caches, the sign-in client."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings: Settings = services.settings
        self.signer = SessionSigner(self.settings.require_webhook_secret())
        self.templates = _templates()
        self.access = AccessCache(self._role)
        self._dispatchers: TTLCache[tuple[str, str], bool] = TTLCache(
            maxsize=20_000, ttl=ACCESS_CACHE_SECONDS
        )
        self._installations: TTLCache[str, int | None] = TTLCache(
            maxsize=4096, ttl=ACCESS_CACHE_SECONDS
        )
        # The filters' choices scan every record: a minute old is fresh enough.
        self._choices: TTLCache[tuple[str, ...], dict[str, list[str]]] = TTLCache(
            maxsize=256, ttl=60
        )
        # SQLite off the event loop: one thread owns the dashboard's connections.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-db")
        self._stores: Stores | None = None
        self._session: aiohttp.ClientSession | None = None
        self.secure_cookies = self.settings.public_url.startswith("https://")

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._stores = await self.run(self._open_stores)
        self._session = aiohttp.ClientSession()

    def _open_stores(self) -> Stores:
        db = self.settings.db
        return Stores(
            DashboardQueries(db),
            ArtifactStore(db, self.settings.artifact_dir),
            InboxQueries(db),
            Outbox(db),
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._stores is not None:
            stores = self._stores
            await self.run(lambda: [store.close() for store in stores])
        self._thread.shutdown(wait=True)

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    @property
    def stores(self) -> Stores:
        assert self._stores is not None, "the dashboard is not started"
        return self._stores

    async def query(self, fn: Callable[[DashboardQueries], T]) -> T:
        queries = self.stores.queries
        return await self.run(lambda: fn(queries))

    # -- who may see and do what ------------------------------------------------------
    def is_operator(self, login: str) -> bool:
        return login.lower() in self.settings.operator_logins

    async def installation_client(self, repo: str) -> GitHubClient | None:
        if repo not in self._installations:
            try:
                found = await self.services.github.app_client().get_repo_installation(repo)
                self._installations[repo] = int(found["id"])
            except PermanentError:
                self._installations[repo] = None  # the App is not installed there
        installation = self._installations[repo]
        if installation is None:
            return None
        return await self.services.github.for_installation(installation)

    async def _role(self, login: str, repo: str) -> str:
        if self.settings.dry_run:
            # No App to ask: only operators see anything, and they see everything.
            return "admin" if self.is_operator(login) else "none"
        gh = await self.installation_client(repo)
        return "none" if gh is None else await gh.get_permission(repo, login)

    async def visible_repos(self, login: str) -> list[str]:
        repos = await self.query(lambda q: q.repos())
        return await self.access.readable(login, repos)

    async def may_dispatch(self, login: str, repo: str) -> bool:
        key = (login.lower(), repo)
        if key not in self._dispatchers:
            allowed = False
            if not self.settings.dry_run:
                gh = await self.installation_client(repo)
                if gh is not None:
                    config = (await self.services.configs.load(gh, repo)).config
                    allowed, _ = await may_dispatch(gh, repo, Requester(login=login), config)
            self._dispatchers[key] = allowed
        return self._dispatchers[key]

    # -- requests -----------------------------------------------------------------------
    def session_of(self, request: web.Request) -> Session | None:
        return self.signer.session(request.cookies.get(SESSION_COOKIE))

    def render(
        self, request: web.Request, template: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        session = self.session_of(request)
        html = self.templates.get_template(template).render(
            prefix=PREFIX,
            path=request.path,
            login=session.login if session else None,
            operator=bool(session and self.is_operator(session.login)),
            csrf=self.signer.csrf_token(session) if session else "",
            **context,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def refuse(self, request: web.Request, status: int, message: str) -> web.Response:
        return self.render(request, "error.html.j2", status=status, message=message)


DASHBOARD = web.AppKey("dashboard", Dashboard)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dashboard(request: web.Request) -> Dashboard:
    return request.config_dict[DASHBOARD]


def _signed_in(handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = _dashboard(request).session_of(request)
        if session is None:
            raise web.HTTPSeeOther(f"{PREFIX}/login")
        return await handler(request, session)

    return wrapped


async def _form(request: web.Request, session: Session) -> dict[str, str]:
    """The posted form, after its CSRF token was checked (403 without a valid one)."""
    form = await request.post()
    if not _dashboard(request).signer.csrf_valid(session, str(form.get("csrf") or "")):
        raise web.HTTPForbidden(text="missing or invalid CSRF token; reload the page")
    return {key: str(value) for key, value in form.items()}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        if exc.status >= 400 and exc.text and not exc.content_type.startswith("text/html"):
            response = _dashboard(request).refuse(request, exc.status, exc.text)
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException) and response.status < 400:
        raise response  # redirects keep their type
    return response


# -- sign-in ---------------------------------------------------------------------------


def _callback_url(dashboard: Dashboard) -> str:
    return f"{dashboard.settings.public_url.rstrip('/')}{PREFIX}/auth/callback"


def _cookie(
    dashboard: Dashboard, response: web.StreamResponse, name: str, value: str, age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=PREFIX,
        httponly=True,
        samesite="Lax",  # sent on GitHub's redirect back; forms are covered by CSRF tokens
        secure=dashboard.secure_cookies,
    )


async def login_page(request: web.Request) -> web.StreamResponse:
    dashboard = _dashboard(request)
    if dashboard.session_of(request) is not None:
        raise web.HTTPSeeOther(f"{PREFIX}/")
    return dashboard.render(
        request, "login.html.j2", enabled=dashboard.settings.sign_in_enabled, error=None
    )


async def auth_start(request: web.Request) -> web.StreamResponse:
    dashboard = _dashboard(request)
    if not dashboard.settings.sign_in_enabled or dashboard._session is None:
        raise web.HTTPSeeOther(f"{PREFIX}/login")
    state = secrets.token_urlsafe(24)
    oauth = GitHubOAuth(dashboard.settings, dashboard._session)
    response = web.HTTPSeeOther(
        oauth.authorize_url(state=state, redirect_uri=_callback_url(dashboard))
    )
    signed = dashboard.signer.sign(
        "state", {"state": state, "exp": int(time.time()) + STATE_SECONDS}
    )
    _cookie(dashboard, response, STATE_COOKIE, signed, STATE_SECONDS)
    raise response


async def auth_callback(request: web.Request) -> web.StreamResponse:
    dashboard = _dashboard(request)
    expected = dashboard.signer.unsign("state", request.cookies.get(STATE_COOKIE))
    state, code = request.query.get("state"), request.query.get("code")
    if (
        expected is None
        or not state
        or not secrets.compare_digest(str(expected.get("state")), state)
        or not code
        or dashboard._session is None
        or not dashboard.settings.sign_in_enabled
    ):
        reason = request.query.get("error") or "the sign-in expired or did not start here"
        return dashboard.render(
            request, "login.html.j2", status=403, enabled=True, error=f"Sign-in failed: {reason}."
        )
    oauth = GitHubOAuth(dashboard.settings, dashboard._session)
    try:
        login = await oauth.login_for_code(code, redirect_uri=_callback_url(dashboard))
    except (SignInError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("dashboard sign-in failed: %s", exc)
        return dashboard.render(
            request, "login.html.j2", status=403, enabled=True, error="GitHub refused the sign-in."
        )
    _, token = dashboard.signer.new_session(login)
    log.info("dashboard sign-in by %s", login)
    response = web.HTTPSeeOther(f"{PREFIX}/")
    _cookie(dashboard, response, SESSION_COOKIE, token, 8 * 3600)
    response.del_cookie(STATE_COOKIE, path=PREFIX)
    raise response


@_signed_in
async def logout(request: web.Request, session: Session) -> web.StreamResponse:
    await _form(request, session)
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    raise response


# -- pages -----------------------------------------------------------------------------


@_signed_in
async def overview(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    repos = await dashboard.visible_repos(session.login)
    counts = await dashboard.query(lambda q: q.verdict_counts())
    context: dict[str, Any] = {
        "verdicts": VERDICTS,
        "repos": [(repo, counts.get(repo, {})) for repo in repos],
        "service": None,
    }
    if dashboard.is_operator(session.login):
        now = time.time()

        def service(q: DashboardQueries) -> dict[str, Any]:
            return {
                "inbox": q.inbox_summary(),
                "outbox": q.outbox_counts(),
                "chart": views.hourly_chart(q.deliveries_per_hour(now=now), now=now),
            }

        context["service"] = await dashboard.query(service)
        context["now"] = now
        context["rate_limits"] = [
            ("the App" if identity is None else f"installation {identity}", gate)
            for identity, gate in sorted(
                dashboard.services.github.rate_limits().items(), key=lambda i: i[0] or 0
            )
            if gate.remaining is not None
        ]
    return dashboard.render(request, "overview.html.j2", **context)


async def _readable(request: web.Request, session: Session, repo: str | None) -> list[str]:
    """The visible repositories, or only `repo` when asked for (404 when not visible)."""
    repos = await _dashboard(request).visible_repos(session.login)
    if repo:
        if repo not in repos:
            raise web.HTTPNotFound(text="no such repository, or you may not read it")
        return [repo]
    return repos


def _int(value: str | None, default: int, *, low: int = 1, high: int = MAX_PAGE) -> int:
    try:
        return max(low, min(high, int(value))) if value else default
    except ValueError:
        return default


@_signed_in
async def candidates_page(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    visible = await dashboard.visible_repos(session.login)
    repo = request.query.get("repo") or None
    repos = await _readable(request, session, repo)
    limit = _int(request.query.get("limit"), 25, high=200)
    facts = await dashboard.query(lambda q: q.candidate_facts(repo))
    allowed = set(repos)
    ranked = rank([f for f in facts if f.repo in allowed], now=datetime.now(UTC), limit=limit)
    dispatchers = {
        r: await dashboard.may_dispatch(session.login, r) for r in {c.facts.repo for c in ranked}
    }
    done = request.query.get("dispatched")
    return dashboard.render(
        request,
        "candidates.html.j2",
        candidates=ranked,
        can_dispatch=dispatchers,
        repos=visible,
        repo=repo,
        limit=limit,
        dispatched=done if done and done.split("#")[0] in allowed else None,
    )


@_signed_in
async def dispatch(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    form = await _form(request, session)
    repo, number = form.get("repo", ""), _int(form.get("number"), 0, low=0, high=10**9)
    if repo not in await dashboard.visible_repos(session.login) or number <= 0:
        raise web.HTTPNotFound(text="no such issue, or you may not read it")
    if not await dashboard.may_dispatch(session.login, repo):
        raise web.HTTPForbidden(text=f"you may not dispatch issues of {repo}")
    gh = await dashboard.installation_client(repo)
    if gh is None:
        raise web.HTTPNotFound(text="the App is not installed on this repository")
    label = (await dashboard.services.configs.load(gh, repo)).config.labels.dispatch
    try:
        await gh.add_labels(repo, number, [label])
        issue = await gh.get_issue(repo, number)
    except (PermanentError, GitHubUnavailable) as exc:
        log.warning("dashboard dispatch of %s#%d failed: %s", repo, number, exc)
        raise web.HTTPBadGateway(text=f"GitHub did not take the label: {exc}") from exc
    installation = dashboard._installations.get(repo)
    payload = {
        "action": "labeled",
        "issue": issue,
        "label": {"name": label},
        "repository": {"full_name": repo},
        "installation": {"id": installation},
        "sender": {"login": session.login, "type": "User"},
    }
    body = json.dumps(payload).encode()
    delivery = describe("issues", payload, f"ui-{uuid.uuid4()}", body, now=time.time(), delay=0.0)
    await dashboard.services.inbox.add(delivery)
    log.info(
        "dashboard: %s dispatched %s#%d (delivery %s)", session.login, repo, number, delivery.id
    )
    raise web.HTTPSeeOther(f"{PREFIX}/candidates?dispatched={repo}%23{number}")


@_signed_in
async def issues_page(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    visible = await dashboard.visible_repos(session.login)
    query = request.query
    repo = query.get("repo") or None
    repos = await _readable(request, session, repo)
    size = _int(query.get("size"), 100)
    page = _int(query.get("page"), 1, high=10**6)
    filters = {k: query.get(k) or None for k in ("verdict", "mode", "hardware", "label")}

    def load(q: DashboardQueries) -> tuple[list[dict[str, Any]], int]:
        return q.issues(repos, limit=size, offset=(page - 1) * size, **filters)

    rows, total = await dashboard.query(load)
    choices = dashboard._choices.get(tuple(visible))
    if choices is None:
        choices = await dashboard.query(lambda q: q.filter_choices(visible))
        dashboard._choices[tuple(visible)] = choices
    return dashboard.render(
        request,
        "issues.html.j2",
        rows=rows,
        total=total,
        page=page,
        size=size,
        pages=max(1, -(-total // size)),
        repo=repo,
        repos=visible,
        filters=filters,
        choices=choices | {"verdict": list(VERDICTS)},
    )


@_signed_in
async def issue_page(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    info = request.match_info
    repo = f"{info['owner']}/{info['name']}"
    await _readable(request, session, repo)
    number = _int(info["number"], 0, low=0, high=10**9)
    detail = await dashboard.query(lambda q: q.issue_detail(repo, number))
    if detail is None:
        raise web.HTTPNotFound(text="no triage record for this issue")
    versions = [v["version"] for v in detail["versions"]]
    old = _int(request.query.get("a"), versions[-2] if len(versions) > 1 else 0, low=0, high=10**6)
    new = _int(request.query.get("b"), versions[-1] if versions else 0, low=0, high=10**6)
    artifacts = dashboard.stores.artifacts

    def texts() -> dict[int, str]:
        return {v: artifacts.get(repo, number, v) or "" for v in versions}

    prompts = await dashboard.run(texts)
    diff = (
        views.prompt_diff(
            prompts[old], prompts[new], old_name=f"version {old}", new_name=f"version {new}"
        )
        if old in prompts and new in prompts and old != new
        else []
    )
    return dashboard.render(
        request,
        "issue.html.j2",
        d=detail,
        prompts=prompts,
        versions=versions,
        old=old,
        new=new,
        diff=diff,
        can_dispatch=detail["verdict"] == "actionable"
        and await dashboard.may_dispatch(session.login, repo),
    )


@_signed_in
async def runs_page(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    repos = await _readable(request, session, request.query.get("repo") or None)
    runs = await dashboard.query(lambda q: q.runs(repos))
    for run in runs:
        for item in run["items"]:
            first = item["prs"][0] if item["prs"] else None
            item["to_pr"] = (
                views.age(first["created"].timestamp() - run["created_at"])
                if first and first["created"]
                else None
            )
    return dashboard.render(request, "runs.html.j2", runs=runs)


def _operator(handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> Handler:
    @_signed_in
    async def wrapped(request: web.Request, session: Session) -> web.StreamResponse:
        if not _dashboard(request).is_operator(session.login):
            raise web.HTTPForbidden(text="only the operators named in BOT_OPERATORS see this page")
        return await handler(request, session)

    return wrapped


async def _operator_list(
    request: web.Request, template: str, statuses: tuple[str, ...], load: Callable[..., Any]
) -> web.StreamResponse:
    """Deliveries or outbox messages, newest first, of one status or all."""
    dashboard = _dashboard(request)
    status = request.query.get("status") or None
    chosen = status if status in statuses else None
    rows = await dashboard.run(lambda: load(status=chosen, limit=100))
    return dashboard.render(
        request,
        template,
        rows=rows,
        chosen=chosen,
        statuses=statuses,
        done=request.query.get("done"),
    )


@_operator
async def deliveries_page(request: web.Request, session: Session) -> web.StreamResponse:
    inbox = _dashboard(request).stores.inbox
    return await _operator_list(request, "deliveries.html.j2", DELIVERY_STATUSES, inbox.recent)


@_operator
async def replay(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    form = await _form(request, session)
    delivery_id = form.get("id", "")
    inbox = dashboard.stores.inbox
    if not await dashboard.run(lambda: inbox.replay(delivery_id)):
        raise web.HTTPConflict(text="no such delivery, or it is running right now")
    dashboard.services.inbox.new_work.set()
    log.info("dashboard: %s replayed delivery %s", session.login, delivery_id)
    raise web.HTTPSeeOther(f"{PREFIX}/deliveries?{urlencode({'done': delivery_id})}")


@_operator
async def outbox_page(request: web.Request, session: Session) -> web.StreamResponse:
    outbox = _dashboard(request).stores.outbox

    def load(**query: Any) -> list[dict[str, Any]]:
        return [message.summary() for message in outbox.messages(**query)]

    return await _operator_list(request, "outbox.html.j2", OUTBOX_STATUSES, load)


@_operator
async def retry(request: web.Request, session: Session) -> web.StreamResponse:
    dashboard = _dashboard(request)
    form = await _form(request, session)
    message_id = _int(form.get("id"), 0, low=0, high=2**62)
    outbox = dashboard.stores.outbox
    if not await dashboard.run(lambda: outbox.retry(message_id)):
        raise web.HTTPConflict(text="no such message, or it was already sent")
    dashboard.services.sender.wake()
    log.info("dashboard: %s retried outbox message %d", session.login, message_id)
    raise web.HTTPSeeOther(f"{PREFIX}/outbox?done={message_id}")


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(f"{PREFIX}/")


def add_dashboard(app: web.Application, services: Services) -> None:
    """Mount the dashboard under /ui/ on the service's application."""
    ui = web.Application(middlewares=[security_headers])
    dashboard = Dashboard(services)
    ui[DASHBOARD] = dashboard
    ui.router.add_get("/", overview)
    ui.router.add_get("/login", login_page)
    ui.router.add_get("/auth/start", auth_start)
    ui.router.add_get("/auth/callback", auth_callback)
    ui.router.add_post("/logout", logout)
    ui.router.add_get("/candidates", candidates_page)
    ui.router.add_post("/candidates/dispatch", dispatch)
    ui.router.add_get("/issues", issues_page)
    ui.router.add_get(r"/issues/{owner}/{name}/{number:\d+}", issue_page)
    ui.router.add_get("/runs", runs_page)
    ui.router.add_get("/deliveries", deliveries_page)
    ui.router.add_post("/deliveries/replay", replay)
    ui.router.add_get("/outbox", outbox_page)
    ui.router.add_post("/outbox/retry", retry)
    ui.router.add_static("/static", _static_dir(), append_version=False)

    async def lifecycle(_: web.Application) -> Any:
        await dashboard.start()
        digests = asyncio.get_running_loop().create_task(
            DigestScheduler(dashboard).run(), name="candidates-digest"
        )
        yield
        digests.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await digests
        await dashboard.stop()

    ui.cleanup_ctx.append(lifecycle)
    app[DASHBOARD] = dashboard  # for tests and benches
    app.router.add_get(PREFIX, _to_dashboard)
    app.add_subapp(PREFIX, ui)


def _static_dir() -> Path:
    """The vendored stylesheet, inside the package (shipped as package data)."""
    return Path(str(files("bot.dashboard") / "static"))
