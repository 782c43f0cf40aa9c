"""`agent-dispatch outbox list|retry`: see what Slack was (or was not yet) told, resend dead ones."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from bot.cli.output import emit, emit_json
from bot.notify.outbox import Outbox
from bot.store.outbox import STATUSES


def register(subparsers: argparse._SubParsersAction) -> None:
    outbox = subparsers.add_parser("outbox", help="Slack notifications waiting, sent or dead")
    commands = outbox.add_subparsers(dest="outbox_command", required=True)

    listing = commands.add_parser("list", help="notifications, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    retry = commands.add_parser("retry", help="send a dead or failed notification again")
    retry.add_argument("id", type=int)
    retry.set_defaults(func=_retry)


def _db_path(args: argparse.Namespace) -> Path:
    """--db, else BOT_DB, else the default (Settings resolves the last two)."""
    from bot.config.settings import Settings

    return Path(args.db) if getattr(args, "db", None) is not None else Settings().db


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _list(args: argparse.Namespace) -> int:
    outbox = Outbox(_db_path(args))
    try:
        rows = outbox.messages(status=args.status, limit=args.limit)
    finally:
        outbox.close()
    if args.json:
        emit_json([r.summary() for r in rows])
        return 0
    if not rows:
        emit("no notifications" + (f" with status {args.status}" if args.status else ""))
    for r in rows:
        where = r.slack_channel or r.channel or "(default channel)"
        if r.parent_key:
            where += f" thread of {r.parent_key}"
        emit(
            f"{r.id}  {r.status:<7} {r.kind:<10} {r.key}  {where}  attempts={r.attempts}"
            f"  {_when(r.created_at)}"
        )
        emit(f"    {r.message.get('text', '')}")
        if r.status in ("failed", "pending") and r.attempts:
            emit(f"    next try: {_when(r.not_before)}")
        if r.last_error:
            emit(f"    error: {r.last_error}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    outbox = Outbox(_db_path(args))
    try:
        message = outbox.get(args.id)
        if message is None:
            emit(f"no notification {args.id}")
            return 1
        if message.status == "sent":
            emit(
                f"notification {args.id} was already sent (ts {message.slack_ts}); not sending it twice"
            )
            return 1
        if message.status == "sending" or not outbox.retry(args.id):
            emit(f"notification {args.id} is being sent right now")
            return 1
    finally:
        outbox.close()
    emit(f"notification {args.id} queued again; the running service will send it")
    return 0
