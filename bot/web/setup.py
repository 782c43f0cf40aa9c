"""Registering the GitHub App from its manifest (app.yml), the way Probot does.

With no App configured, `serve` shows /setup: a form that posts the manifest to GitHub
with a random single-use `state`. GitHub creates the App and sends the browser back to
/setup/callback with a code, which we exchange for the App's credentials and write to
the local env file (mode 600) and a private-key file beside it. The credentials never
reach a page or a log line; the operator restarts the service to leave dry-run.

Whoever completes registration owns the deployment (their App's webhook secret lands in
.env), and the hostname is public (Certificate Transparency) before anyone registers.
So /setup needs a setup token: random, made at start-up, printed in the service's log
(and so in `./dev serve` output), good until an App is registered here.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import yaml
from aiohttp import web

from bot.config.settings import DEFAULT_ENV_FILE, Settings
from bot.github.client import web_url
from bot.packaged import app_manifest

log = logging.getLogger(__name__)

APP_MANIFEST = app_manifest()
PRIVATE_KEY_FILE = "agent-dispatch.private-key.pem"
STATE_TTL_SECONDS = 3600.0  # GitHub's manifest codes live one hour too
MAX_PENDING_STATES = 1000
CONVERSION_TIMEOUT_SECONDS = 30.0
API_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "agent-dispatch",
}
# Every key the callback writes; earlier lines with these keys are replaced.
CREDENTIAL_KEYS = (
    "BOT_APP_ID",
    "BOT_PRIVATE_KEY",
    "BOT_PRIVATE_KEY_PATH",
    "BOT_WEBHOOK_SECRET",
    "BOT_CLIENT_ID",
    "BOT_CLIENT_SECRET",
)
ORG_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
PLAIN_ENV_VALUE = re.compile(r"[\w./:@+-]*")


class SetupError(Exception):
    """A registration step failed; `message` is safe to show (it holds no secret)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Pure parts: the manifest, GitHub's form URL, the env file's new text.


def load_manifest(path: Path = APP_MANIFEST) -> dict[str, Any]:
    manifest = yaml.safe_load(path.read_text())
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return manifest


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def build_manifest(
    base: dict[str, Any], public_url: str, *, webhook_url: str | None = None
) -> dict[str, Any]:
    """app.yml plus the URLs of this deployment (a smee channel may stand in for the hook)."""
    root = public_url.rstrip("/")
    manifest = dict(base)
    manifest.setdefault("url", root)
    manifest["hook_attributes"] = {"url": webhook_url or f"{root}/webhook", "active": True}
    manifest["redirect_url"] = f"{root}/setup/callback"
    return manifest


def new_app_url(api_url: str, state: str, org: str | None = None) -> str:
    """GitHub's "register an App from a manifest" form, for a user or an organization."""
    owner = f"/organizations/{quote(org, safe='')}" if org else ""
    return f"{web_url(api_url)}{owner}/settings/apps/new?{urlencode({'state': state})}"


def _env_key(line: str) -> str | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    text = text.removeprefix("export ").lstrip()
    key, sep, _ = text.partition("=")
    return key.strip() if sep else None


def _env_value(value: str) -> str:
    if PLAIN_ENV_VALUE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def updated_env(existing: str, values: dict[str, str], header: str) -> str:
    """`existing` without earlier credential lines, then `values` under a comment."""
    kept = [line for line in existing.splitlines() if _env_key(line) not in CREDENTIAL_KEYS]
    while kept and not kept[-1].strip():
        kept.pop()
    block = [f"# {header}"] + [f"{key}={_env_value(value)}" for key, value in values.items()]
    return "\n".join([*kept, ""] + block if kept else block) + "\n"


# I/O around them.


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a file only its owner can read (follows symlinks,
    so a container's /app/.env -> /data/.env stays a link)."""
    target = path.resolve()
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_credentials(app: dict[str, Any], env_file: Path) -> Path:
    """Write the converted App's credentials; returns the env file's resolved path."""
    target = env_file.resolve()
    key_file = target.parent / PRIVATE_KEY_FILE
    write_private(key_file, app["pem"])
    values = {
        "BOT_APP_ID": str(app["id"]),
        "BOT_PRIVATE_KEY_PATH": str(key_file),
        "BOT_WEBHOOK_SECRET": app["webhook_secret"],
    }
    if app.get("client_id"):
        values["BOT_CLIENT_ID"] = str(app["client_id"])
    if app.get("client_secret"):
        values["BOT_CLIENT_SECRET"] = str(app["client_secret"])
    existing = target.read_text() if target.exists() else ""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"GitHub App {app.get('slug') or app.get('name')}, registered through /setup on {when}"
    write_private(target, updated_env(existing, values, header))
    return target


async def convert(session: aiohttp.ClientSession, api_url: str, code: str) -> dict[str, Any]:
    """Exchange the manifest code for the new App (id, pem, webhook secret, client id/secret)."""
    url = f"{api_url}/app-manifests/{quote(code, safe='')}/conversions"
    try:
        async with session.post(url, headers=API_HEADERS) as response:
            if response.status != 201:
                raise SetupError(
                    502,
                    f"GitHub refused the code (HTTP {response.status}). A code works once and "
                    "for one hour only: start again.",
                )
            app = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise SetupError(502, f"Could not reach GitHub at {api_url}: {type(exc).__name__}") from exc
    missing = [
        k for k in ("id", "pem", "webhook_secret") if not isinstance(app, dict) or not app.get(k)
    ]
    if missing:
        raise SetupError(502, f"GitHub's answer lacks {', '.join(missing)}; nothing was written.")
    return app


@dataclass
class PendingStates:
    """`state` values handed out by /setup; each is accepted once, within its lifetime."""

    ttl: float = STATE_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _issued: dict[str, float] = field(default_factory=dict)

    def issue(self) -> str:
        now = self.clock()
        self._issued = {s: t for s, t in self._issued.items() if now - t < self.ttl}
        while len(self._issued) >= MAX_PENDING_STATES:
            self._issued.pop(next(iter(self._issued)))
        state = secrets.token_urlsafe(32)
        self._issued[state] = now
        return state

    def take(self, state: str) -> bool:
        issued = self._issued.pop(state, None)
        return issued is not None and self.clock() - issued < self.ttl


# The pages.

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem}}
code{{background:#f3f3f3;padding:0 .2em}}button{{font-size:1rem;padding:.5em 1em}}</style>
</head><body><h1>{title}</h1>
{body}
</body></html>
"""


def _page(title: str, body: str, *, status: int = 200, forms: bool = False) -> web.Response:
    # The setup form posts cross-site through GitHub's login and SSO redirects, which
    # `form-action` would block and `no-referrer` would strip the Origin from.
    form_action = "" if forms else "form-action 'none'; "
    response = web.Response(
        text=PAGE.format(title=html.escape(title), body=body),
        status=status,
        content_type="text/html",
        charset="utf-8",
    )
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "Referrer-Policy": "strict-origin-when-cross-origin" if forms else "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'unsafe-inline'; {form_action}"
                "frame-ancestors 'none'; base-uri 'none'"
            ),
        }
    )
    return response


def _restart_note(env_file: Path) -> str:
    overriding = [k for k in CREDENTIAL_KEYS if k in os.environ]
    note = (
        f"<p>The credentials are in <code>{html.escape(str(env_file))}</code> (mode 600) and "
        "the private key beside it. <strong>Restart the service</strong> to leave dry-run.</p>"
    )
    if overriding:
        names = ", ".join(f"<code>{k}</code>" for k in overriding)
        note += (
            f"<p>Set in this process's environment, and so overriding the file: {names}. "
            "Remove them (or give them the new values) before restarting.</p>"
        )
    return note


def new_setup_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Registration:
    settings: Settings
    env_file: Path = DEFAULT_ENV_FILE
    manifest_path: Path = APP_MANIFEST
    states: PendingStates = field(default_factory=PendingStates)
    registered: dict[str, str] | None = None  # name and html_url of the App made here
    token: str = field(default_factory=new_setup_token)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def setup_url(self) -> str:
        return f"{self.settings.public_url.rstrip('/')}/setup?{urlencode({'token': self.token})}"

    def _token_ok(self, request: web.Request) -> bool:
        given = request.query.get("token", "")
        return given.isascii() and secrets.compare_digest(given, self.token)

    def _registered_page(self) -> web.Response:
        assert self.registered is not None
        name = html.escape(self.registered["name"])
        link = html.escape(self.registered["html_url"])
        body = (
            f'<p>Registered the GitHub App <a href="{link}">{name}</a>.</p>'
            f"{_restart_note(self.env_file.resolve())}"
            f'<p>Then install it on your repositories: <a href="{link}/installations/new">'
            f"{link}/installations/new</a>.</p>"
        )
        return _page("GitHub App registered", body)

    async def setup(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return _page(
                "Setup token needed",
                "<p>Registering the GitHub App needs the setup token: open the "
                "<code>/setup?token=…</code> address printed in the service's log.</p>",
                status=403,
            )
        if self.registered is not None:
            return self._registered_page()
        org = request.query.get("org") or None
        if org is not None and not ORG_NAME.fullmatch(org):
            return _page(
                "Bad organization name", "<p>Not a GitHub organization name.</p>", status=400
            )
        webhook_url = request.query.get("webhook_url") or None
        if webhook_url is not None and not _http_url(webhook_url):
            return _page(
                "Bad webhook URL",
                "<p><code>webhook_url</code> must be an http(s) URL.</p>",
                status=400,
            )
        manifest = build_manifest(
            load_manifest(self.manifest_path), self.settings.public_url, webhook_url=webhook_url
        )
        action = new_app_url(self.settings.github_api_url, self.states.issue(), org)
        target = web_url(self.settings.github_api_url)
        owner = f"the organization <code>{html.escape(org)}</code>" if org else "your account"
        hook = manifest["hook_attributes"]["url"]
        body = f"""<p>No GitHub App is configured, so the bot runs in dry-run. Register one for
{owner} on <code>{html.escape(target)}</code>: GitHub shows the App's name (change it if it is
taken), its permissions and events, then sends you back here.</p>
<p>Webhooks will go to <code>{html.escape(hook)}</code>; GitHub must be able to reach it
(set <code>BOT_PUBLIC_URL</code>, or add <code>?webhook_url=</code> a smee.io channel).</p>
<form method="post" action="{html.escape(action)}">
<input type="hidden" name="manifest" value="{html.escape(json.dumps(manifest))}">
<button type="submit">Create the GitHub App</button>
</form>
<form method="get" action="/setup"><p>For an organization instead:
<input type="hidden" name="token" value="{html.escape(self.token)}">
<input name="org" placeholder="organization" pattern="[A-Za-z0-9][A-Za-z0-9-]*" required>
<button type="submit">Use it</button></p></form>"""
        return _page("Register agent-dispatch", body, forms=True)

    async def callback(self, request: web.Request) -> web.Response:
        code = request.query.get("code", "")
        state = request.query.get("state", "")
        accepted = self.states.take(state)  # spent by any use, with or without a code
        if not code or not accepted:
            return _page(
                "Registration not accepted",
                '<p>This link is unknown, used or expired. <a href="/setup">Start again</a>.</p>',
                status=400,
            )
        async with self._lock:
            if self.registered is not None:
                return self._registered_page()
            folder = self.env_file.resolve().parent
            if not os.access(folder, os.W_OK):  # check before the one-time code is spent
                body = f"<p>Cannot write to <code>{html.escape(str(folder))}</code>.</p>"
                return _page("Registration not possible", body, status=500)
            try:
                timeout = aiohttp.ClientTimeout(total=CONVERSION_TIMEOUT_SECONDS)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    app = await convert(session, self.settings.github_api_url, code)
            except SetupError as exc:
                log.warning("GitHub App registration failed: %s", exc.message)
                body = f'<p>{html.escape(exc.message)}</p><p><a href="/setup">Start again</a>.</p>'
                return _page("Registration failed", body, status=exc.status)
            written = save_credentials(app, self.env_file)
            name = str(app.get("name") or app.get("slug") or "GitHub App")
            self.registered = {"name": name, "html_url": str(app.get("html_url") or "")}
        log.warning(
            "registered GitHub App %r; credentials written to %s; restart to use them",
            name,
            written,
        )
        return self._registered_page()


REGISTRATION = web.AppKey("registration", Registration)


def add_routes(app: web.Application, settings: Settings) -> None:
    """Mount /setup and /setup/callback (only while no App is configured)."""
    registration = Registration(settings)
    app[REGISTRATION] = registration
    log.warning(
        "no GitHub App is configured: register one at %s (the token in it is needed and "
        "works until an App is registered)",
        registration.setup_url(),
    )
    app.router.add_get("/setup", registration.setup)
    app.router.add_get("/setup/callback", registration.callback)
