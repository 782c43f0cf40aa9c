"""The `agent-dispatch` command line (also `python -m bot`).

Start-up is kept short: this module imports only the standard library at the top, the
module of a command group is imported only when that command runs (LAZY), and the
libraries a command needs are imported inside the functions that use them. Mistakes are
answered with one line on stderr and a non-zero exit, never a traceback (`main`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bot.cli.output import UsageError, emit, emit_json

if TYPE_CHECKING:
    import asyncio

    from bot.config.settings import Settings

PROG = "agent-dispatch"
# Command -> (module that registers it, the help line `--help` shows before importing it).
LAZY: dict[str, tuple[str, str]] = {
    "issues": ("bot.cli.issues", "query the local issue mirror"),
    "sync": ("bot.cli.issues", "backfill the mirror from GitHub (GraphQL)"),
    "triage": ("bot.cli.triage", "triage one issue (offline from the mirror, or live)"),
    "artifacts": ("bot.cli.triage", "stored prompt files"),
    "outbox": ("bot.cli.outbox", "Slack notifications waiting, sent or dead"),
    "candidates": (
        "bot.cli.candidates",
        "actionable issues with no open PR, not yet dispatched, ranked by impact",
    ),
}
# A command not named above (a module added a new one): every module is imported.
MODULES = tuple(dict.fromkeys(module for module, _ in LAZY.values()))
# Commands that only read: a missing database is a mistake, not something to create.
READS = {"deliveries", "actions", "issues", "artifacts", "outbox"}


def only_reads(args: argparse.Namespace) -> bool:
    if args.command == "triage":
        return bool(getattr(args, "offline", False))
    return args.command in READS and getattr(args, "issues_command", None) != "import"


log = logging.getLogger("bot.cli.main")


def load_settings(args: argparse.Namespace, **overrides: object) -> Settings:
    from bot.config.settings import Settings

    values = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "db", None) is not None:
        values["db"] = args.db
    return Settings(**values)  # type: ignore[arg-type]


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.config.settings import (
        DEFAULT_ENV_FILE,
        MissingWebhookSecret,
        ensure_local_webhook_secret,
        served_url,
    )
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
    log.info(
        "listening on %s; links and /setup use %s%s",
        served_url(settings.host, settings.port),
        settings.public_url,
        "" if os.environ.get("BOT_PUBLIC_URL") else " (set BOT_PUBLIC_URL for a public address)",
    )
    web.run_app(
        create_app(settings, redactor=redactor),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,  # no log line per delivery: the metrics count them
        loop=event_loop(settings.event_loop),
    )
    return 0


def event_loop(choice: str) -> asyncio.AbstractEventLoop | None:
    """uvloop when asked for or, with "auto", when installed; None lets aiohttp use asyncio."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            log.warning("BOT_EVENT_LOOP=uvloop but uvloop is not installed; using asyncio")
        return None
    return uvloop.new_event_loop()


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


class _Version(argparse.Action):
    """--version, reading the installed metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("agent-dispatch")
        except PackageNotFoundError:
            found = "(not installed)"
        sys.stdout.write(f"{parser.prog} {found}\n")
        parser.exit(0)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that say where to look."""

    def error(self, message: str) -> NoReturn:
        if "arguments are required" in message and self._subparsers is not None:
            choices = next(
                a.choices
                for a in self._subparsers._group_actions
                if isinstance(a, argparse._SubParsersAction)
            )
            message = f"name a command: {', '.join(choices)}"
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of argv (the first word that is not a global option or its value)."""
    words = iter(argv)
    for word in words:
        if word == "--db":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command`: its module is imported, the other lazy commands are
    listed by name and help line only. An unknown word imports every module (one of them
    may register it); `None` (plain `--help`) imports none."""
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="database path (env BOT_DB, default ./agent-dispatch.sqlite3)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

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

    doctor = sub.add_parser("doctor", help="check the set-up, with a fix for each problem")
    doctor.set_defaults(func=_run_doctor)

    if command in LAZY:
        modules: Sequence[str] = (LAZY[command][0],)
    elif command is None or command in sub.choices:
        modules = ()
    else:
        modules = MODULES
    for module in modules:
        importlib.import_module(module).register(sub)
    for name, (_, help_text) in LAZY.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_text)
    return parser


def _run_doctor(args: argparse.Namespace) -> int:
    from bot.cli.doctor import cmd_doctor

    return cmd_doctor(args)


def _check_db(args: argparse.Namespace) -> None:
    """A --db (or BOT_DB) the command cannot use is a mistake to name before any work."""
    raw = args.db if args.db is not None else os.environ.get("BOT_DB")
    if raw is None:
        return
    path = Path(raw).expanduser()
    if path.is_dir():
        raise UsageError(f"--db {path} is a directory: give a file path, e.g. {path}/bot.sqlite3")
    if not path.parent.is_dir():
        raise UsageError(
            f"--db {path}: the directory {path.parent} does not exist (create it first)"
        )
    if only_reads(args) and not path.exists():
        raise UsageError(
            f"no database at {path}, so no issues to read: check --db (or BOT_DB), or fill it "
            f"first with "
            f"`{PROG} issues import FILE` or `{PROG} serve`"
        )


def _settings_error(exc: Exception) -> str:
    errors: list[dict[str, Any]] = getattr(exc, "errors", lambda: [])()
    parts = [
        f"BOT_{'_'.join(str(p) for p in e.get('loc', ())).upper()}: {e.get('msg', '')}"
        for e in errors
    ]
    return (
        "invalid setting " + "; ".join(parts or [str(exc)]) + " (fix it in the environment or .env)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_of(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.error(
            f"name a command: {', '.join(['serve', 'deliveries', 'actions', 'doctor', *LAZY])}"
        )
    if not hasattr(args, "func"):  # a stub: the command's module did not register it
        parser.error(f"{args.command} is not available in this install")
    try:
        _check_db(args)
        code: int = args.func(args)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 2
    except BrokenPipeError:
        # `agent-dispatch issues list | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except sqlite3.Error as exc:
        sys.stderr.write(f"{PROG}: database error: {exc} (check --db or BOT_DB)\n")
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(
            f"{PROG}: {exc.strerror or exc}{where} (check the path and its permissions)\n"
        )
        return 1
    except Exception as exc:
        if type(exc).__name__ == "ValidationError" and "pydantic" in type(exc).__module__:
            sys.stderr.write(f"{PROG}: {_settings_error(exc)}\n")
            return 2
        raise
    return code


def run() -> None:
    """Console-script entry point."""
    # pydantic looks for plugins among every installed distribution's entry points the
    # first time it builds a model (tens of ms); the command line uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    sys.exit(main())
