"""The `agent-dispatch` command line (also `python -m bot`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from bot.cli import candidates as candidates_cli
from bot.cli import issues as mirror_cli
from bot.cli import outbox as outbox_cli
from bot.cli import triage as triage_cli
from bot.cli.output import emit, emit_json
from bot.config.settings import (
    DEFAULT_ENV_FILE,
    MissingWebhookSecret,
    Settings,
    ensure_local_webhook_secret,
)

log = logging.getLogger("bot.cli.main")


def load_settings(args: argparse.Namespace, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "db", None) is not None:
        values["db"] = args.db
    return Settings(**values)  # type: ignore[arg-type]


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.observability.logs import Redactor, configure_logging, init_sentry
    from bot.service import create_app

    settings = load_settings(args, host=args.host, port=args.port)
    generated = None
    if settings.webhook_secret is None and settings.dry_run:
        # A first local trial: make a secret so the service can verify what it is sent.
        generated = ensure_local_webhook_secret(DEFAULT_ENV_FILE)
        settings = load_settings(args, host=args.host, port=args.port)
    redactor = Redactor.from_settings(settings)
    configure_logging(settings, redactor)
    if generated is not None:
        log.warning(
            "generated a webhook secret into %s (mode 600); use it to sign test deliveries",
            generated.resolve(),
        )
    try:
        settings.require_webhook_secret()
    except MissingWebhookSecret as exc:
        log.error("%s", exc)
        return 2
    init_sentry(settings, redactor)
    web.run_app(
        create_app(settings, redactor=redactor),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
    )
    return 0


def cmd_deliveries_list(args: argparse.Namespace) -> int:
    from bot.store.inbox import InboxQueries

    queries = InboxQueries(load_settings(args).db)
    rows = queries.recent(status=args.status, limit=args.limit)
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        emit("no deliveries" + (f" with status {args.status}" if args.status else ""))
    for r in rows:
        event = f"{r['event']}.{r['action']}" if r["action"] else r["event"]
        line = f"{r['id']}  {r['status']:<8} {event:<28} {r['subject'] or r['repo'] or '-':<32} attempts={r['attempts']}  {_when(r['received_at'])}"
        if r["last_error"]:
            line += f"\n    error: {r['last_error']}"
        emit(line)
    return 0


def cmd_deliveries_replay(args: argparse.Namespace) -> int:
    from bot.store.inbox import InboxQueries

    queries = InboxQueries(load_settings(args).db)
    if queries.replay(args.id):
        emit(f"delivery {args.id} queued again; the running service will process it")
        return 0
    emit(f"no delivery {args.id} to replay (unknown id, or it is running right now)")
    return 1


def cmd_actions_list(args: argparse.Namespace) -> int:
    from bot.store.actions import ActionLog

    actions = ActionLog(load_settings(args).db).list(limit=args.limit, target=args.target)
    if args.json:
        emit_json(actions)
        return 0
    if not actions:
        emit("no recorded actions")
    for a in actions:
        emit(
            f"#{a['id']}  {_when(a['created_at'])}  {a['target']:<6} {a['kind']:<20} {a['subject']}"
        )
        if args.verbose:
            emit_json(a["payload"])
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agent-dispatch")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-dispatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="database path (env BOT_DB, default ./agent-dispatch.sqlite3)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    deliveries = sub.add_parser("deliveries", help="inspect and replay webhook deliveries")
    dsub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    dlist = dsub.add_parser("list", help="recent deliveries")
    dlist.add_argument(
        "--status", choices=["pending", "running", "done", "failed", "dead", "ignored"]
    )
    dlist.add_argument("--limit", type=int, default=50)
    dlist.add_argument("--json", action="store_true")
    dlist.set_defaults(func=cmd_deliveries_list)
    dreplay = dsub.add_parser("replay", help="process a stored delivery again")
    dreplay.add_argument("id")
    dreplay.set_defaults(func=cmd_deliveries_replay)

    actions = sub.add_parser("actions", help="what dry-run recorded instead of sending")
    asub = actions.add_subparsers(dest="actions_command", required=True)
    alist = asub.add_parser("list", help="recorded writes, newest first")
    alist.add_argument("--target", choices=["github", "slack"])
    alist.add_argument("--limit", type=int, default=50)
    alist.add_argument("-v", "--verbose", action="store_true", help="show each payload")
    alist.add_argument("--json", action="store_true")
    alist.set_defaults(func=cmd_actions_list)

    for module in (mirror_cli, triage_cli, outbox_cli, candidates_cli):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ValidationError as exc:
        sys.stderr.write(f"agent-dispatch: invalid settings:\n{exc}\n")
        return 2
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
