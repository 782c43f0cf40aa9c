"""A stateful fake of the parts of GitHub the bot uses, on one local aiohttp server.

One server per test session (and per benchmark), running on its own thread and event
loop so every test's loop can reach it; `reset()` gives each test a clean state. REST
shapes follow GitHub's; every request is recorded so the suite can check it against
GitHub's OpenAPI description (see openapi.py).

Seed state with add_repo/add_issue/add_pull/add_comment/... , read it back with
issue()/comments_of()/labels_of()/..., and turn the knobs (latency, fail_next,
secondary_limit, exhaust_primary, drop_next, slow_next, apply_then_fail, chaos, outage,
token_ttl, expire_tokens, require_auth) to make it misbehave the way GitHub does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import random
import secrets
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.packaged import app_manifest
from tests.threaded_server import ThreadedServer

from . import graphql
from .oauth import FakeOAuth

WEB = "https://github.com"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
GHES_PREFIX = "/api/v3"
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
REACTION_KEYS = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")


def iso(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_iso(value: datetime | str | None) -> str:
    if value is None:
        return iso()
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


@dataclass
class RecordedRequest:
    method: str
    path: str  # as sent (percent-encoded), including a GHES /api/v3 prefix
    api_path: str  # without the GHES prefix: what GitHub's OpenAPI description names
    query: dict[str, list[str]]
    body: Any  # decoded JSON, or None
    auth: str | None  # "token", "bearer" or None
    status: int = 0  # 0: the connection was dropped


@dataclass
class Fault:
    kind: str  # status | secondary | primary | drop | slow | applied (answered, then 502)
    times: int
    path: str | None = None  # substring of the API path the fault applies to
    method: str | None = None
    status: int = 502
    retry_after: float = 0.05
    reset_in: float = 0.05
    delay: float = 0.5

    def matches(self, method: str, api_path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path in api_path
        )


MANIFEST = yaml.safe_load(app_manifest().read_text())
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass
class Chaos:
    """Random misbehaviour for fault-injection runs (rates are per request, 0..1).

    `applied` hits only writes: GitHub applies the write, then answers 502 (a load
    balancer losing the answer). `outage_until` answers 503 to everything until then.
    """

    rng: random.Random
    server_errors: float = 0.0
    applied: float = 0.0
    resets: float = 0.0
    secondary: float = 0.0
    max_delay: float = 0.0
    outage_until: float = 0.0

    def pick(self, method: str) -> Fault | None:
        if time.time() < self.outage_until:
            return Fault("status", 1, status=503)
        roll = self.rng.random()
        for kind, rate in (
            ("status", self.server_errors),
            ("drop", self.resets),
            ("secondary", self.secondary),
            ("applied", self.applied if method in WRITE_METHODS else 0.0),
        ):
            if roll < rate:
                return Fault(kind, 1, status=self.rng.choice((500, 502, 503)), retry_after=0.2)
            roll -= rate
        return None


@dataclass
class RepoState:
    full_name: str
    id: int
    installation_id: int
    private: bool = False
    default_branch: str = "main"
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)  # PRs included
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by issue number
    timeline: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role name
    files: dict[tuple[str, str | None], str] = field(default_factory=dict)  # (path, ref)
    pull_files: dict[int, list[str]] = field(default_factory=dict)  # PR number -> paths
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_number: int = 1
    gone: dict[int, tuple[str, int] | None] = field(default_factory=dict)  # deleted or moved

    def blob_sha(self, path: str) -> str | None:
        """Git's blob sha of a default-branch file (what a tree lists and contents returns)."""
        text = self.files.get((path, None))
        if text is None:
            return None
        raw = text.encode()
        return hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()


@dataclass
class Token:
    installation_id: int
    expires_at: float


@dataclass
class FakeState:
    """Everything the fake knows; graphql.resolve() reads it directly."""

    repos: dict[str, RepoState] = field(default_factory=dict)
    comment_index: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> repo, n
    installations: dict[int, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    redelivery_requests: list[int] = field(default_factory=list)  # delivery ids
    used_manifest_codes: set[str] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def next_id(self) -> int:
        return next(self.ids)


class _Reply(Exception):
    """Raised by a route to answer at once (errors)."""

    def __init__(
        self, status: int, message: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


@dataclass
class _Call:
    method: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    installation_id: int | None  # from a valid installation token
    request: web.Request

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class _Moved(Exception):
    """A transferred issue: 301 to where it lives now (GitHub's answer)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


Route = tuple[str, tuple[str, ...], str, Callable[[_Call], tuple[int, Any, dict[str, str]]]]


def _user(login: str, kind: str = "User") -> dict[str, Any]:
    uid = int(hashlib.sha1(login.encode()).hexdigest()[:7], 16)
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_{uid}",
        "type": kind,
        "site_admin": False,
        "html_url": f"{WEB}/{login}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}",
    }


class FakeGitHub(ThreadedServer):
    """The fake GitHub server; use start()/stop() or `with FakeGitHub() as fake:`."""

    thread_name = "fake-github"

    app_id = 4242
    app_slug = "agent-dispatch-test"

    def __init__(self) -> None:
        super().__init__()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self.webhook_secret = "fake-webhook-secret"
        self._lock = threading.RLock()
        self.oauth = FakeOAuth()  # sign-in with GitHub (the dashboard)
        self.reset()

    # Lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @property
    def url(self) -> str:
        """REST base, like https://api.github.com."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ghes_url(self) -> str:
        """REST base as on GitHub Enterprise Server (https://HOST/api/v3)."""
        return self.url + GHES_PREFIX

    @property
    def graphql_url(self) -> str:
        return self.url + "/graphql"

    def settings(self, **overrides: Any) -> Any:
        """bot Settings pointing at this fake, with the fake App's credentials."""
        from bot.config.settings import Settings

        values: dict[str, Any] = {
            "webhook_secret": self.webhook_secret,
            "app_id": self.app_id,
            "private_key": self.private_key_pem,
            "github_api_url": self.url,
            "github_graphql_url": None,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def reset(self) -> None:
        """Forget all state, recorded requests and knobs (between tests)."""
        with self._lock:
            self.state = FakeState()
            self.state.installations[1] = {"account": "octo-org"}
            self.requests: list[RecordedRequest] = []
            self.faults: list[Fault] = []
            self.latency = 0.0
            self.chaos_knobs: Chaos | None = None
            self.require_auth = False
            self.token_ttl = 3600.0
            self.oauth.reset()

    # Knobs

    def _fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 502,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` (e.g. 502)."""
        self._fault(Fault("status", times, path, method, status=status))

    def secondary_limit(
        self,
        times: int = 1,
        *,
        retry_after: float = 0.05,
        status: int = 403,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Secondary rate limit: 403 (or 429) with retry-after."""
        self._fault(Fault("secondary", times, path, method, status=status, retry_after=retry_after))

    def exhaust_primary(
        self,
        times: int = 1,
        *,
        reset_in: float = 0.05,
        status: int = 403,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Primary rate limit used up: 403 with x-ratelimit-remaining 0 and a reset time."""
        self._fault(Fault("primary", times, path, method, status=status, reset_in=reset_in))

    def apply_then_fail(
        self,
        times: int = 1,
        *,
        status: int = 502,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Carry out the next `times` matching requests, then answer `status` instead."""
        self._fault(Fault("applied", times, path, method, status=status))

    def chaos(
        self,
        *,
        server_errors: float = 0.0,
        applied: float = 0.0,
        resets: float = 0.0,
        secondary: float = 0.0,
        max_delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        """Misbehave at random from now on (see Chaos); `chaos()` with no rates calms down."""
        with self._lock:
            self.chaos_knobs = Chaos(
                random.Random(seed), server_errors, applied, resets, secondary, max_delay
            )

    def outage(self, seconds: float) -> None:
        """Answer 503 to every request for the next `seconds`."""
        with self._lock:
            if self.chaos_knobs is None:
                self.chaos_knobs = Chaos(random.Random(0))
            self.chaos_knobs.outage_until = time.time() + seconds

    def drop_next(
        self, times: int = 1, *, path: str | None = None, method: str | None = None
    ) -> None:
        """Close the connection without answering."""
        self._fault(Fault("drop", times, path, method))

    def slow_next(
        self,
        times: int = 1,
        *,
        delay: float = 0.5,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer normally but only after `delay` seconds (client timeouts)."""
        self._fault(Fault("slow", times, path, method, delay=delay))

    def expire_tokens(self) -> None:
        """Every installation token issued so far stops working (401)."""
        with self._lock:
            for token in self.state.tokens.values():
                token.expires_at = 0.0

    # Seeding

    def add_installation(self, installation_id: int, account: str = "octo-org") -> None:
        with self._lock:
            self.state.installations[installation_id] = {"account": account}

    def add_repo(self, repo: str, *, installation_id: int = 1, private: bool = False) -> RepoState:
        with self._lock:
            existing = self.state.repos.get(repo)
            if existing is not None:
                return existing
            self.state.installations.setdefault(installation_id, {"account": repo.split("/")[0]})
            state = RepoState(repo, self.state.next_id(), installation_id, private)
            self.state.repos[repo] = state
            return state

    def _label(self, repo: RepoState, name: str) -> dict[str, Any]:
        label = repo.labels.get(name)
        if label is None:
            lid = self.state.next_id()
            label = {
                "id": lid,
                "node_id": f"LA_{lid}",
                "url": f"{self.url}/repos/{repo.full_name}/labels/{name}",
                "name": name,
                "color": "ededed",
                "default": False,
                "description": None,
            }
            repo.labels[name] = label
        return label

    def add_issue(
        self,
        repo: str,
        number: int | None = None,
        *,
        title: str = "An issue",
        body: str | None = "",
        user: str = "octocat",
        labels: tuple[str, ...] | list[str] = (),
        state: str = "open",
        reactions: dict[str, int] | None = None,
        author_association: str = "NONE",
        created_at: datetime | str | None = None,
        updated_at: datetime | str | None = None,
        closed_at: datetime | str | None = None,
        assignees: tuple[str, ...] | list[str] = (),
    ) -> dict[str, Any]:
        """Add an issue (REST shape) and return it."""
        with self._lock:
            r = self.add_repo(repo)
            if number is None:
                number = r.next_number
            r.next_number = max(r.next_number, number + 1)
            iid = self.state.next_id()
            created = _as_iso(created_at)
            api = f"{self.url}/repos/{repo}/issues/{number}"
            counts = {k: 0 for k in REACTION_KEYS} | (reactions or {})
            issue = {
                "url": api,
                "repository_url": f"{self.url}/repos/{repo}",
                "labels_url": api + "/labels{/name}",
                "comments_url": api + "/comments",
                "events_url": api + "/events",
                "timeline_url": api + "/timeline",
                "html_url": f"{WEB}/{repo}/issues/{number}",
                "id": iid,
                "node_id": f"I_{iid}",
                "number": number,
                "title": title,
                "user": _user(user),
                "labels": [self._label(r, name) for name in labels],
                "state": state,
                "state_reason": "completed" if state == "closed" else None,
                "locked": False,
                "assignee": _user(assignees[0]) if assignees else None,
                "assignees": [_user(a) for a in assignees],
                "milestone": None,
                "comments": 0,
                "created_at": created,
                "updated_at": _as_iso(updated_at) if updated_at else created,
                "closed_at": _as_iso(closed_at) if (closed_at or state == "closed") else None,
                "author_association": author_association,
                "active_lock_reason": None,
                "body": body,
                "reactions": {"url": api + "/reactions", "total_count": sum(counts.values())}
                | counts,
                "performed_via_github_app": None,
            }
            r.issues[number] = issue
            r.comments.setdefault(number, [])
            r.timeline.setdefault(number, [])
            return issue

    def add_pull(
        self,
        repo: str,
        number: int | None = None,
        *,
        title: str = "A pull request",
        body: str | None = "",
        user: str = "octocat",
        head_ref: str = "feature",
        base_ref: str = "main",
        state: str = "open",
        merged: bool = False,
        draft: bool = False,
        labels: tuple[str, ...] | list[str] = (),
        created_at: datetime | str | None = None,
        files: tuple[str, ...] | list[str] = (),
    ) -> dict[str, Any]:
        """Add a pull request (its issue too, with the pull_request key); returns the PR.

        `files` are the paths it changes, as the PR files API lists them.
        """
        with self._lock:
            if merged:
                state = "closed"
            issue = self.add_issue(
                repo,
                number,
                title=title,
                body=body,
                user=user,
                labels=labels,
                state=state,
                created_at=created_at,
            )
            n = issue["number"]
            merged_at = iso() if merged else None
            html = f"{WEB}/{repo}/pull/{n}"
            issue["html_url"] = html
            issue["draft"] = draft
            issue["pull_request"] = {
                "url": f"{self.url}/repos/{repo}/pulls/{n}",
                "html_url": html,
                "diff_url": html + ".diff",
                "patch_url": html + ".patch",
                "merged_at": merged_at,
            }
            sha = hashlib.sha1(f"{repo}#{n}".encode()).hexdigest()
            pull = {
                "url": f"{self.url}/repos/{repo}/pulls/{n}",
                "id": issue["id"],
                "node_id": f"PR_{issue['id']}",
                "html_url": html,
                "number": n,
                "state": state,
                "locked": False,
                "title": title,
                "user": issue["user"],
                "body": body,
                "labels": issue["labels"],
                "created_at": issue["created_at"],
                "updated_at": issue["updated_at"],
                "closed_at": issue["closed_at"],
                "merged_at": merged_at,
                "merged": merged,
                "draft": draft,
                "head": {"ref": head_ref, "sha": sha, "label": f"{repo.split('/')[0]}:{head_ref}"},
                "base": {
                    "ref": base_ref,
                    "sha": "0" * 40,
                    "label": f"{repo.split('/')[0]}:{base_ref}",
                },
                "author_association": issue["author_association"],
            }
            self.state.repos[repo].pulls[n] = pull
            self.state.repos[repo].pull_files[n] = list(files)
            return pull

    def add_comment(
        self,
        repo: str,
        number: int,
        body: str,
        *,
        user: str = "octocat",
        user_type: str = "User",
        author_association: str = "NONE",
        created_at: datetime | str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            return self._new_comment(
                self.state.repos[repo],
                number,
                body,
                _user(user, user_type),
                author_association,
                _as_iso(created_at),
            )

    def _new_comment(
        self,
        r: RepoState,
        number: int,
        body: str,
        user: dict[str, Any],
        association: str,
        created: str,
    ) -> dict[str, Any]:
        cid = self.state.next_id()
        issue = r.issues[number]
        comment = {
            "id": cid,
            "node_id": f"IC_{cid}",
            "url": f"{self.url}/repos/{r.full_name}/issues/comments/{cid}",
            "html_url": f"{issue['html_url']}#issuecomment-{cid}",
            "issue_url": issue["url"],
            "body": body,
            "user": user,
            "created_at": created,
            "updated_at": created,
            "author_association": association,
            "reactions": {"url": "", "total_count": 0} | {k: 0 for k in REACTION_KEYS},
            "performed_via_github_app": None,
        }
        r.comments[number].append(comment)
        self.state.comment_index[cid] = (r.full_name, number)
        issue["comments"] += 1
        issue["updated_at"] = created
        r.timeline[number].append(comment | {"event": "commented", "actor": user})
        return comment

    def add_timeline_event(self, repo: str, number: int, event: dict[str, Any]) -> dict[str, Any]:
        """Append a raw timeline event; id, created_at and actor are filled when missing."""
        with self._lock:
            eid = self.state.next_id()
            full = {
                "id": eid,
                "node_id": f"E_{eid}",
                "created_at": iso(),
                "actor": _user("octocat"),
            }
            full.update(event)
            self.state.repos[repo].timeline[number].append(full)
            return full

    def cross_reference(
        self, repo: str, number: int, source_repo: str, source_number: int
    ) -> dict[str, Any]:
        """Record that source_repo#source_number mentions repo#number (a linked PR or issue)."""
        with self._lock:
            source = dict(self.state.repos[source_repo].issues[source_number])
            source["repository"] = {"full_name": source_repo, "name": source_repo.split("/")[1]}
            now = iso()
            return self.add_timeline_event(
                repo,
                number,
                {
                    "event": "cross-referenced",
                    "actor": source["user"],
                    "updated_at": now,
                    "source": {"type": "issue", "issue": source},
                },
            )

    def delete_issue(self, repo: str, number: int) -> None:
        """The issue is gone: GitHub answers 410 from now on."""
        with self._lock:
            r = self.state.repos[repo]
            r.issues.pop(number, None)
            r.gone[number] = None

    def transfer_issue(self, repo: str, number: int, to_repo: str) -> dict[str, Any]:
        """Move the issue to `to_repo` (its new number is returned); the old URL answers 301."""
        with self._lock:
            issue = self.state.repos[repo].issues.pop(number)
            moved = self.add_issue(
                to_repo, title=issue["title"], body=issue["body"], user=issue["user"]["login"]
            )
            self.state.repos[repo].gone[number] = (to_repo, moved["number"])
            return moved

    def set_permission(self, repo: str, username: str, role: str) -> None:
        with self._lock:
            self.add_repo(repo).permissions[username] = role

    def set_file(self, repo: str, path: str, text: str, *, ref: str | None = None) -> None:
        """A file on the default branch (ref None) or on `ref`."""
        with self._lock:
            self.add_repo(repo).files[(path.strip("/"), ref)] = text

    def add_delivery(
        self,
        guid: str | None = None,
        *,
        status_code: int = 502,
        event: str = "issues",
        action: str | None = "labeled",
        delivered_at: datetime | str | None = None,
        redelivery: bool = False,
        installation_id: int | None = 1,
        repository_id: int | None = None,
    ) -> dict[str, Any]:
        """One attempt in the App's delivery log (status_code 0: could not connect)."""
        with self._lock:
            delivery = {
                "id": self.state.next_id(),
                "guid": guid or str(uuid.uuid4()),
                "delivered_at": _as_iso(delivered_at),
                "redelivery": redelivery,
                "duration": 0.05,
                "status": "OK"
                if 200 <= status_code < 400
                else (
                    f"Invalid HTTP Response: {status_code}" if status_code else "failed to connect"
                ),
                "status_code": status_code,
                "event": event,
                "action": action,
                "installation_id": installation_id,
                "repository_id": repository_id,
                "throttled_at": None,
            }
            self.state.deliveries.append(delivery)
            return delivery

    # Reading state

    def issue(self, repo: str, number: int) -> dict[str, Any]:
        with self._lock:
            return self.state.repos[repo].issues[number]

    def comments_of(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.state.repos[repo].comments.get(number, []))

    def labels_of(self, repo: str, number: int) -> list[str]:
        with self._lock:
            return [label["name"] for label in self.state.repos[repo].issues[number]["labels"]]

    def timeline_of(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.state.repos[repo].timeline.get(number, []))

    def requests_to(
        self, method: str | None = None, path_contains: str | None = None
    ) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path_contains is None or path_contains in r.api_path)
            ]

    @property
    def token_requests(self) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests_to("POST", "/access_tokens")
            if r.api_path.startswith("/app/installations/")
        ]

    # Serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        api_path = (
            raw_path[len(GHES_PREFIX) :] if raw_path.startswith(GHES_PREFIX + "/") else raw_path
        )
        if api_path.startswith("/login/oauth/"):  # the web host's sign-in, not the REST API
            return await self.oauth.handle(request, api_path)
        query = parse_qs(request.rel_url.raw_query_string, keep_blank_values=True)
        raw_body = await request.read()
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        auth = request.headers.get("Authorization", "")
        record = RecordedRequest(
            request.method,
            raw_path,
            api_path,
            query,
            body,
            auth.split(" ", 1)[0].lower() if auth else None,
        )
        with self._lock:
            self.requests.append(record)
            fault = self._take_fault(request.method, api_path)
            chaos = self.chaos_knobs
            if fault is None and chaos is not None:
                fault = chaos.pick(request.method)
            delay = chaos.rng.uniform(0, chaos.max_delay) if chaos and chaos.max_delay else 0.0
        if self.latency or delay:
            await asyncio.sleep(self.latency + delay)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        elif fault is not None and fault.kind != "applied":
            if fault.kind == "drop":
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=500)
            record.status, payload, headers = self._fault_reply(fault)
            return self._respond(request, record.status, payload, headers)

        if raw_path in ("/graphql", "/api/graphql"):
            status, payload, headers = await self._graphql(request, body)
        else:
            with self._lock:
                status, payload, headers = self._route(request, api_path, query, body)
        if fault is not None and fault.kind == "applied":
            status, payload, headers = fault.status, {"message": "Bad Gateway"}, {}
        response = self._respond(request, status, payload, headers)
        record.status = response.status
        return response

    def _take_fault(self, method: str, api_path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(method, api_path):
                fault.times -= 1
                return fault
        return None

    def _fault_reply(self, fault: Fault) -> tuple[int, Any, dict[str, str]]:
        if fault.kind == "secondary":
            return (
                fault.status,
                {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
                {"retry-after": f"{fault.retry_after:g}"},
            )
        if fault.kind == "primary":
            return (
                fault.status,
                {"message": "API rate limit exceeded for installation ID 1."},
                {
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": f"{time.time() + fault.reset_in:.3f}",
                },
            )
        return fault.status, {"message": HTTPStatus(fault.status).phrase}, {}

    def _respond(
        self, request: web.Request, status: int, payload: Any, headers: dict[str, str]
    ) -> web.Response:
        base = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-used": "1",
            "x-ratelimit-resource": "core",
        }
        base.update(headers)
        if status == 204 or payload is None:
            return web.Response(status=status, headers=base)
        if status >= 400 and isinstance(payload, dict):
            payload = payload | {"documentation_url": "https://docs.github.com/rest"}
        text = json.dumps(payload)
        if request.method == "GET" and status == 200:
            etag = 'W/"' + hashlib.sha1(text.encode()).hexdigest() + '"'
            base["etag"] = etag
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers=base)
        return web.Response(status=status, text=text, content_type="application/json", headers=base)

    async def _graphql(self, request: web.Request, body: Any) -> tuple[int, Any, dict[str, str]]:
        if request.method != "POST":
            return 404, {"message": "Not Found"}, {}
        if self.require_auth:
            with self._lock:
                installation = self._installation_of(request)
            if installation is None:
                return 401, {"message": "Bad credentials"}, {}
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return 400, {"message": "Problems parsing JSON"}, {}
        data = await graphql.resolve(self.state, body["query"], body.get("variables") or {})
        return 200, data, {}

    # Routing

    def _installation_of(self, request: web.Request) -> int | None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        token = self.state.tokens.get(credential)
        if token is None or token.expires_at <= time.time():
            return None
        return token.installation_id

    def _check_jwt(self, request: web.Request) -> None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise _Reply(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                credential,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise _Reply(401, f"'Expiration time' claim or signature invalid: {exc}") from exc
        if str(claims["iss"]) != str(self.app_id):
            raise _Reply(401, "Integration not found")
        if claims["exp"] - time.time() > 600 + 60:
            raise _Reply(401, "'Expiration time' claim ('exp') is too far in the future")

    def _routes(self) -> list[Route]:
        return [
            ("GET", ("app",), "jwt", self._get_app),
            ("GET", ("app", "installations"), "jwt", self._list_installations),
            ("GET", ("user",), "none", self._get_user),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "installation"),
                "jwt",
                self._get_repo_installation,
            ),
            (
                "POST",
                ("app", "installations", "{installation_id}", "access_tokens"),
                "jwt",
                self._create_token,
            ),
            ("GET", ("app", "hook", "deliveries"), "jwt", self._list_deliveries),
            (
                "POST",
                ("app", "hook", "deliveries", "{delivery_id}", "attempts"),
                "jwt",
                self._redeliver,
            ),
            ("POST", ("app-manifests", "{code}", "conversions"), "none", self._convert_manifest),
            ("GET", ("search", "issues"), "token", self._search_issues),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "issues", "comments", "{comment_id}"),
                "token",
                self._get_comment,
            ),
            (
                "PATCH",
                ("repos", "{owner}", "{repo}", "issues", "comments", "{comment_id}"),
                "token",
                self._edit_comment,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "issues", "{issue_number}"),
                "token",
                self._get_issue,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "issues", "{issue_number}", "comments"),
                "token",
                self._list_comments,
            ),
            (
                "POST",
                ("repos", "{owner}", "{repo}", "issues", "{issue_number}", "comments"),
                "token",
                self._create_comment,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "issues", "{issue_number}", "timeline"),
                "token",
                self._list_timeline,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "issues", "{issue_number}", "labels"),
                "token",
                self._list_labels,
            ),
            (
                "POST",
                ("repos", "{owner}", "{repo}", "issues", "{issue_number}", "labels"),
                "token",
                self._add_labels,
            ),
            (
                "DELETE",
                ("repos", "{owner}", "{repo}", "issues", "{issue_number}", "labels", "{name}"),
                "token",
                self._remove_label,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "labels", "{name}"),
                "token",
                self._get_repo_label,
            ),
            (
                "POST",
                ("repos", "{owner}", "{repo}", "labels"),
                "token",
                self._create_repo_label,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "pulls", "{pull_number}"),
                "token",
                self._get_pull,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "pulls", "{pull_number}", "files"),
                "token",
                self._list_pull_files,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "collaborators", "{username}", "permission"),
                "token",
                self._get_permission,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "contents", "{+path}"),
                "token",
                self._get_contents,
            ),
            (
                "GET",
                ("repos", "{owner}", "{repo}", "git", "trees", "{tree_sha}"),
                "token",
                self._get_tree,
            ),
        ]

    @staticmethod
    def _match(template: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for i, part in enumerate(template):
            if part.startswith("{+"):
                rest = segments[i:]
                if not rest or not all(rest):
                    return None
                params[part[2:-1]] = "/".join(rest)
                return params
            if i >= len(segments):
                return None
            if part.startswith("{"):
                if not segments[i]:
                    return None
                params[part[1:-1]] = segments[i]
            elif part != segments[i]:
                return None
        return params if len(template) == len(segments) else None

    def _route(
        self, request: web.Request, api_path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        segments = [unquote(s) for s in api_path.strip("/").split("/")]
        for method, template, auth, handler in self._routes():
            if method != request.method:
                continue
            params = self._match(template, segments)
            if params is None:
                continue
            try:
                installation = None
                if auth == "jwt":
                    self._check_jwt(request)
                elif auth == "token":
                    installation = self._installation_of(request)
                    if self.require_auth and installation is None:
                        raise _Reply(401, "Bad credentials")
                call = _Call(request.method, params, query, body, installation, request)
                return handler(call)
            except _Reply as reply:
                answer: dict[str, Any] = {"message": reply.message, "status": str(reply.status)}
                if reply.errors:
                    answer["errors"] = reply.errors
                return reply.status, answer, {}
            except _Moved as moved:
                return (
                    301,
                    {"message": "Moved Permanently", "url": moved.location},
                    {"location": moved.location},
                )
        return 404, {"message": "Not Found"}, {}

    def _repo(self, call: _Call) -> RepoState:
        repo = self.state.repos.get(f"{call.params['owner']}/{call.params['repo']}")
        if repo is None:
            raise _Reply(404, "Not Found")
        if self.require_auth and call.installation_id != repo.installation_id:
            raise _Reply(404, "Not Found")
        return repo

    def _issue(self, call: _Call, repo: RepoState) -> dict[str, Any]:
        try:
            number = int(call.params["issue_number"])
        except ValueError:
            raise _Reply(404, "Not Found") from None
        if number in repo.gone:
            moved = repo.gone[number]
            if moved is None:
                raise _Reply(410, "This issue was deleted")
            raise _Moved(f"{self.url}/repos/{moved[0]}/issues/{moved[1]}")
        issue = repo.issues.get(number)
        if issue is None:
            raise _Reply(404, "Not Found")
        return issue

    def _page(self, call: _Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """GitHub's page/per_page pagination with a Link header."""
        per_page = min(MAX_PER_PAGE, max(1, int(call.arg("per_page") or DEFAULT_PER_PAGE)))
        page = max(1, int(call.arg("page") or 1))
        last = max(1, -(-len(items) // per_page))
        links = []
        url = call.request.url

        def link(n: int, rel: str) -> str:
            return f'<{url.update_query(page=str(n), per_page=str(per_page))}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    # Route handlers: each returns (status, JSON payload, extra headers)

    def _get_app(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        return 200, self._app_info(), {}

    def _list_installations(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        """The App's installations, each on every repository the fake holds for it."""
        info = self._app_info()
        installations = [
            {
                "id": installation_id,
                "account": _user(str(data["account"]), "Organization"),
                "repository_selection": "all",
                "app_id": self.app_id,
                "target_type": "Organization",
                "permissions": info["permissions"],
                "events": info["events"],
            }
            for installation_id, data in sorted(self.state.installations.items())
        ]
        return 200, installations, {}

    def _get_user(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        """The signed-in user, for a user token from the OAuth flow."""
        login = self.oauth.login_for(call.request.headers.get("Authorization", ""))
        if login is None:
            raise _Reply(401, "Requires authentication")
        return 200, _user(login), {}

    def _app_info(self) -> dict[str, Any]:
        return {
            "id": self.app_id,
            "slug": self.app_slug,
            "node_id": f"A_{self.app_id}",
            "name": "Agent Dispatch (test)",
            "owner": _user("octo-org", "Organization"),
            "description": "",
            "external_url": "http://127.0.0.1",
            "html_url": f"{WEB}/apps/{self.app_slug}",
            "created_at": iso(0),
            "updated_at": iso(0),
            # Registered from the repository's app.yml, as /setup does.
            "permissions": dict(MANIFEST["default_permissions"]),
            "events": list(MANIFEST["default_events"]),
        }

    def _get_repo_installation(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self.state.repos.get(f"{call.params['owner']}/{call.params['repo']}")
        if repo is None:
            raise _Reply(404, "Not Found")
        account = self.state.installations[repo.installation_id]["account"]
        return (
            200,
            {
                "id": repo.installation_id,
                "app_id": self.app_id,
                "app_slug": self.app_slug,
                "account": _user(account, "Organization"),
                "target_type": "Organization",
                "repository_selection": "all",
            },
            {},
        )

    def _create_token(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        try:
            installation_id = int(call.params["installation_id"])
        except ValueError:
            raise _Reply(404, "Not Found") from None
        if installation_id not in self.state.installations:
            raise _Reply(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        expires_at = time.time() + self.token_ttl
        self.state.tokens[token] = Token(installation_id, expires_at)
        return (
            201,
            {
                "token": token,
                "expires_at": iso(expires_at),
                "permissions": {"issues": "write", "metadata": "read"},
                "repository_selection": "all",
            },
            {},
        )

    def _list_deliveries(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        ordered = sorted(
            self.state.deliveries, key=lambda d: (d["delivered_at"], d["id"]), reverse=True
        )
        per_page = min(MAX_PER_PAGE, max(1, int(call.arg("per_page") or DEFAULT_PER_PAGE)))
        start = int(call.arg("cursor") or 0)
        page = ordered[start : start + per_page]
        headers = {}
        if start + per_page < len(ordered):
            url = call.request.url.update_query(
                cursor=str(start + per_page), per_page=str(per_page)
            )
            headers["link"] = f'<{url}>; rel="next"'
        return 200, page, headers

    def _redeliver(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        delivery_id = int(call.params["delivery_id"])
        original = next((d for d in self.state.deliveries if d["id"] == delivery_id), None)
        if original is None:
            raise _Reply(404, "Not Found")
        self.state.redelivery_requests.append(delivery_id)
        self.state.deliveries.append(
            original
            | {
                "id": self.state.next_id(),
                "delivered_at": iso(),
                "redelivery": True,
                "status": "OK",
                "status_code": 200,
            }
        )
        return 202, {}, {}

    def _convert_manifest(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        code = call.params["code"]
        if code in self.state.used_manifest_codes:
            raise _Reply(404, "Not Found")
        self.state.used_manifest_codes.add(code)
        return (
            201,
            self._app_info()
            | {
                "client_id": "Iv1.fake" + secrets.token_hex(4),
                "client_secret": secrets.token_hex(20),
                "webhook_secret": self.webhook_secret,
                "pem": self.private_key_pem,
            },
            {},
        )

    def _get_issue(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        return 200, self._issue(call, self._repo(call)), {}

    def _get_pull(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        try:
            pull = repo.pulls.get(int(call.params["pull_number"]))
        except ValueError:
            pull = None
        if pull is None:
            raise _Reply(404, "Not Found")
        return 200, pull, {}

    def _list_pull_files(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        try:
            number = int(call.params["pull_number"])
        except ValueError:
            raise _Reply(404, "Not Found") from None
        if number not in repo.pulls:
            raise _Reply(404, "Not Found")
        head = repo.pulls[number]["head"]["sha"]
        files = [
            {
                "sha": hashlib.sha1(f"{head}:{path}".encode()).hexdigest(),
                "filename": path,
                "status": "modified",
                "additions": 1,
                "deletions": 0,
                "changes": 1,
                "blob_url": f"{WEB}/{repo.full_name}/blob/{head}/{path}",
                "raw_url": f"{WEB}/{repo.full_name}/raw/{head}/{path}",
                "contents_url": f"{self.url}/repos/{repo.full_name}/contents/{path}?ref={head}",
            }
            for path in repo.pull_files.get(number, [])
        ]
        page, headers = self._page(call, files)
        return 200, page, headers

    def _list_comments(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        issue = self._issue(call, repo)
        page, headers = self._page(call, repo.comments[issue["number"]])
        return 200, page, headers

    def _create_comment(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        issue = self._issue(call, repo)
        if not isinstance(call.body, dict) or not isinstance(call.body.get("body"), str):
            raise _Reply(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
        comment = self._new_comment(
            repo,
            issue["number"],
            call.body["body"],
            _user(f"{self.app_slug}[bot]", "Bot"),
            "NONE",
            iso(),
        )
        return 201, comment, {}

    def _find_comment(self, call: _Call) -> tuple[RepoState, dict[str, Any]]:
        repo = self._repo(call)
        try:
            cid = int(call.params["comment_id"])
        except ValueError:
            raise _Reply(404, "Not Found") from None
        where = self.state.comment_index.get(cid)
        if where is None or where[0] != repo.full_name:
            raise _Reply(404, "Not Found")
        comment = next(c for c in repo.comments[where[1]] if c["id"] == cid)
        return repo, comment

    def _get_comment(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        return 200, self._find_comment(call)[1], {}

    def _edit_comment(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        _, comment = self._find_comment(call)
        if not isinstance(call.body, dict) or not isinstance(call.body.get("body"), str):
            raise _Reply(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
        comment["body"] = call.body["body"]
        comment["updated_at"] = iso()
        return 200, comment, {}

    def _list_timeline(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        issue = self._issue(call, repo)
        page, headers = self._page(call, repo.timeline[issue["number"]])
        return 200, page, headers

    def _list_labels(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        issue = self._issue(call, self._repo(call))
        page, headers = self._page(call, issue["labels"])
        return 200, page, headers

    def _add_labels(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        issue = self._issue(call, repo)
        wanted = call.body.get("labels") if isinstance(call.body, dict) else call.body
        if not isinstance(wanted, list) or not wanted:
            raise _Reply(422, "Invalid request.\n\nNo labels given.")
        have = {label["name"] for label in issue["labels"]}
        for entry in wanted:
            name = entry.get("name") if isinstance(entry, dict) else entry
            if not isinstance(name, str) or not name:
                raise _Reply(422, "Invalid request.\n\nInvalid label name.")
            if name in have:
                continue
            have.add(name)
            label = self._label(repo, name)
            issue["labels"].append(label)
            repo.timeline[issue["number"]].append(self._label_event("labeled", label))
        issue["updated_at"] = iso()
        return 200, issue["labels"], {}

    @staticmethod
    def _repo_label(repo: RepoState, name: str) -> dict[str, Any] | None:
        """Label names are unique in any case on GitHub."""
        return next((lb for n, lb in repo.labels.items() if n.lower() == name.lower()), None)

    def _get_repo_label(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        label = self._repo_label(self._repo(call), call.params["name"])
        if label is None:
            raise _Reply(404, "Not Found")
        return 200, label, {}

    def _create_repo_label(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        body = call.body if isinstance(call.body, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise _Reply(422, "Validation Failed", [{"resource": "Label", "code": "missing_field"}])
        if self._repo_label(repo, name) is not None:
            raise _Reply(
                422,
                "Validation Failed",
                [{"resource": "Label", "code": "already_exists", "field": "name"}],
            )
        label = self._label(repo, name)
        label["color"] = str(body.get("color") or "ededed").lstrip("#")
        label["description"] = body.get("description")
        return 201, label, {}

    def _label_event(self, kind: str, label: dict[str, Any]) -> dict[str, Any]:
        eid = self.state.next_id()
        return {
            "id": eid,
            "node_id": f"LE_{eid}",
            "event": kind,
            "actor": _user(f"{self.app_slug}[bot]", "Bot"),
            "created_at": iso(),
            "label": {"name": label["name"], "color": label["color"]},
            "commit_id": None,
            "commit_url": None,
            "performed_via_github_app": None,
        }

    def _remove_label(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        issue = self._issue(call, repo)
        name = call.params["name"]
        label = next((lb for lb in issue["labels"] if lb["name"] == name), None)
        if label is None:
            raise _Reply(404, "Label does not exist")
        issue["labels"].remove(label)
        repo.timeline[issue["number"]].append(self._label_event("unlabeled", label))
        issue["updated_at"] = iso()
        return 200, issue["labels"], {}

    def _get_permission(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        username = call.params["username"]
        role = repo.permissions.get(username, "none" if repo.private else "read")
        return (
            200,
            {
                "permission": LEGACY_PERMISSION.get(role, "read"),
                "role_name": role,
                "user": _user(username),
            },
            {},
        )

    def _get_contents(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        repo = self._repo(call)
        path = call.params["path"].strip("/")
        ref = call.arg("ref")
        refs = (ref, None) if ref in (None, repo.default_branch) else (ref,)
        text = next((repo.files[(path, r)] for r in refs if (path, r) in repo.files), None)
        if text is None:
            raise _Reply(404, "Not Found")
        raw = text.encode()
        encoded = base64.encodebytes(raw).decode()  # GitHub wraps lines like this
        return (
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(raw),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "content": encoded,
                "sha": hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest(),
                "url": f"{self.url}/repos/{repo.full_name}/contents/{path}",
                "html_url": f"{WEB}/{repo.full_name}/blob/{ref or repo.default_branch}/{path}",
            },
            {},
        )

    def _get_tree(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        """The default branch's files (set_file with no ref) as one recursive tree."""
        repo = self._repo(call)
        paths = sorted(path for path, ref in repo.files if ref is None)
        if not paths:
            raise _Reply(404, "Not Found")
        blobs = [
            {
                "path": path,
                "mode": "100644",
                "type": "blob",
                "sha": repo.blob_sha(path),
                "size": len(repo.files[(path, None)].encode()),
                "url": f"{self.url}/repos/{repo.full_name}/git/blobs/{path}",
            }
            for path in paths
        ]
        sha = hashlib.sha1("\n".join(b["sha"] + b["path"] for b in blobs).encode()).hexdigest()
        ref = call.params["tree_sha"]
        if ref not in ("HEAD", repo.default_branch, sha):
            raise _Reply(404, "Not Found")
        url = f"{self.url}/repos/{repo.full_name}/git/trees/{sha}"
        return 200, {"sha": sha, "url": url, "tree": blobs, "truncated": False}, {}

    def _search_issues(self, call: _Call) -> tuple[int, Any, dict[str, str]]:
        q = call.arg("q")
        if not q:
            raise _Reply(422, "Validation Failed")
        matches = [
            issue | {"score": 1.0}
            for repo in self.state.repos.values()
            for issue in repo.issues.values()
            if _search_matches(q, repo, issue)
        ]
        page, headers = self._page(call, matches)
        return (
            200,
            {"total_count": len(matches), "incomplete_results": False, "items": page},
            headers,
        )


def _search_matches(q: str, repo: RepoState, issue: dict[str, Any]) -> bool:
    """A small subset of GitHub's issue search: qualifiers plus words in title or body."""
    try:
        terms = shlex.split(q)
    except ValueError:
        terms = q.split()
    text = f"{issue['title']}\n{issue.get('body') or ''}".lower()
    kind = "pr" if "pull_request" in issue else "issue"
    qualifiers: dict[str, Callable[[str], bool]] = {
        "repo": lambda v: v == repo.full_name.lower(),
        "is": lambda v: v in (kind, issue["state"]) or v not in ("issue", "pr", "open", "closed"),
        "type": lambda v: v == kind,
        "state": lambda v: v == issue["state"],
        "label": lambda v: v in {label["name"].lower() for label in issue["labels"]},
        "author": lambda v: v == issue["user"]["login"].lower(),
        "in": lambda v: True,
    }
    for term in terms:
        name, sep, value = term.partition(":")
        check = qualifiers.get(name.lower()) if sep else None
        if check is None:
            if term.lower() not in text:
                return False
        elif not check(value.lower()):
            return False
    return True
