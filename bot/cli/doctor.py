"""`agent-dispatch doctor`: check a set-up the way GitHub and Slack will see it.

One line per check: `ok`, `FAIL` (with what to do) or `skip` (not configured, and not
needed). The exit status is 0 only when no check failed. Checks are pure verdicts on what
each probe found (`Check`), the probes are thin network and file reads.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.cli.output import emit

FETCH_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "FAIL" or "skip"
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return text + (f"\n      fix: {self.fix}" if self.fix else "")


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


def skip(name: str, detail: str) -> Check:
    return Check(name, "skip", detail)


def compare_manifest(manifest: dict[str, Any], app: dict[str, Any]) -> Check:
    """app.yml's permissions and events against the ones the registered App has."""
    name = "app.yml matches the App"
    wanted = {k: str(v) for k, v in (manifest.get("default_permissions") or {}).items()}
    granted = {k: str(v) for k, v in (app.get("permissions") or {}).items()}
    rank = {"read": 1, "write": 2, "admin": 3}
    short = sorted(
        f"{perm}: {level} (App has {granted.get(perm, 'none')})"
        for perm, level in wanted.items()
        if rank.get(granted.get(perm, ""), 0) < rank.get(level, 0)
    )
    events = sorted(set(manifest.get("default_events") or []) - set(app.get("events") or []))
    if not short and not events:
        return ok(
            name,
            f"{len(wanted)} permissions and {len(manifest.get('default_events') or [])} events",
        )
    missing = "; ".join(short + [f"event {e} not subscribed" for e in events])
    return fail(
        name,
        missing,
        "in the App's settings on GitHub (Permissions & events), grant these, then accept "
        "the new permissions on each installation",
    )


def check_secret(settings: Any) -> Check:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        return fail(
            "webhook secret",
            "BOT_WEBHOOK_SECRET is not set",
            "set BOT_WEBHOOK_SECRET in .env to the secret of the App's webhook "
            "(`agent-dispatch serve` makes one on a first local run)",
        )
    return ok("webhook secret", "set")


def check_database(settings: Any) -> Check:
    from bot.store import StoreError, schema
    from bot.store.db import can_write, connect

    name = "database"
    path = settings.db
    if not path.parent.is_dir():
        return fail(name, f"directory {path.parent} does not exist", f"mkdir -p {path.parent}")
    if not path.exists():
        return fail(name, f"no database at {path}", "start the service once: agent-dispatch serve")
    try:
        conn = connect(path, migrate=False)  # report the schema as found, never upgrade it
        try:
            found = schema.version(conn)
            can_write(conn)
        finally:
            conn.close()
    except StoreError as exc:
        return fail(name, f"{path}: {exc}", "check the file's owner and permissions, or --db")
    if found < schema.LATEST:
        return fail(
            name,
            f"{path} is at schema {found}, this version needs {schema.LATEST}",
            "start the service once (it upgrades the schema): agent-dispatch serve",
        )
    if found > schema.LATEST:
        return fail(
            name,
            f"{path} is at schema {found}, newer than this version ({schema.LATEST})",
            "upgrade agent-dispatch to the version that wrote it",
        )
    return ok(name, f"{path} writable, schema {found} (current)")


async def check_github(settings: Any, session: Any) -> list[Check]:
    from bot.github.client import GitHubFactory
    from bot.observability.metrics import Metrics
    from bot.packaged import app_manifest
    from bot.web.setup import load_manifest

    if settings.dry_run:
        return [
            fail(
                "App credentials",
                "no BOT_APP_ID / private key (dry-run: nothing is written to GitHub)",
                "register the App at <public URL>/setup, or set BOT_APP_ID and "
                "BOT_PRIVATE_KEY_PATH",
            )
        ]
    factory = GitHubFactory(settings, session, Metrics())
    client = factory.app_client()
    try:
        app = await client.get_app()
    except Exception as exc:
        return [
            fail(
                "App credentials",
                f"GET /app failed: {exc}",
                "check BOT_APP_ID and the private key (a new key can be made in the App's "
                "settings), and BOT_GITHUB_API_URL",
            )
        ]
    checks = [ok("App credentials", f"GET /app: {app.get('slug') or app.get('name')}")]
    try:
        installations = await client.list_installations()
    except Exception as exc:
        checks.append(
            fail("installations", f"GET /app/installations failed: {exc}", "check the App")
        )
    else:
        if installations:
            accounts = ", ".join(
                f"{(i.get('account') or {}).get('login')} ({i.get('repository_selection')})"
                for i in installations
            )
            checks.append(ok("installations", accounts))
        else:
            checks.append(
                fail(
                    "installations",
                    "the App is installed nowhere",
                    "install it on the repositories to triage (the App's page on GitHub, "
                    "Install App)",
                )
            )
    checks.append(compare_manifest(load_manifest(app_manifest()), app))
    return checks


async def check_slack(settings: Any, session: Any) -> Check:
    name = "Slack"
    if settings.slack_token is None:
        return skip(name, "BOT_SLACK_TOKEN not set (no notifications)")
    url = settings.slack_api_url.rstrip("/") + "/auth.test"
    headers = {"Authorization": f"Bearer {settings.slack_token.get_secret_value()}"}
    try:
        async with session.post(url, headers=headers) as response:
            answer = await response.json(content_type=None)
    except Exception as exc:
        return fail(name, f"auth.test failed: {type(exc).__name__}", "check BOT_SLACK_API_URL")
    if not answer.get("ok"):
        return fail(
            name,
            f"auth.test: {answer.get('error')}",
            "set BOT_SLACK_TOKEN to the bot token (xoxb-...) of the Slack app",
        )
    if not settings.slack_channel:
        return fail(
            name,
            f"token works ({answer.get('team')}) but BOT_SLACK_CHANNEL is not set",
            "set BOT_SLACK_CHANNEL (or slack.channel in each repository's config)",
        )
    return ok(name, f"token works for {answer.get('team')}; channel {settings.slack_channel}")


async def check_public_url(settings: Any, session: Any) -> Check:
    name = "public URL"
    url = settings.public_url.rstrip("/") + "/healthz"
    try:
        async with session.get(url) as response:
            status = response.status
    except Exception as exc:
        return fail(
            name,
            f"{url} unreachable ({type(exc).__name__})",
            "start the service (agent-dispatch serve) and check BOT_PUBLIC_URL",
        )
    if status != 200:
        return fail(name, f"{url} answered {status}", "check BOT_PUBLIC_URL and the proxy")
    return ok(name, f"{url} answers")


async def run_checks(settings: Any) -> list[Check]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        probes: list[Callable[[], Awaitable[Any]]] = [
            lambda: check_github(settings, session),
            lambda: check_slack(settings, session),
            lambda: check_public_url(settings, session),
        ]
        found = await asyncio.gather(*(probe() for probe in probes))
    checks = [check_secret(settings), check_database(settings)]
    for item in found:
        checks.extend(item if isinstance(item, list) else [item])
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.cli.main import load_settings

    checks = asyncio.run(run_checks(load_settings(args)))
    for check in checks:
        emit(check.line())
    failed = sum(check.status == "FAIL" for check in checks)
    emit(
        f"{len(checks) - failed} of {len(checks)} checks passed" if failed else "all checks passed"
    )
    return 1 if failed else 0
