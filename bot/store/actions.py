"""Dry-run action log: every write the bot would make to GitHub or Slack, recorded.

With no App credentials the bot runs end to end but sends nothing; this table is what
it would have sent. Each action carries an idempotency key so a delivery that is
processed again after a crash records its actions once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from bot.store.db import connect
from bot.store.thread import AsyncStore

log = logging.getLogger(__name__)


class ActionLog:
    def __init__(self, path: Path | str, *, autocheckpoint: bool = True) -> None:
        self._conn = connect(path, check_same_thread=False, autocheckpoint=autocheckpoint)

    def record(
        self,
        target: str,
        kind: str,
        subject: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> bool:
        """Store one would-be write; False when the same key was already recorded."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO actions (created_at, target, kind, subject, payload, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), target, kind, subject, json.dumps(payload, default=str), key),
        )
        fresh = cur.rowcount == 1
        (logger or log).info(
            "dry-run: would %s %s on %s%s",
            target,
            kind,
            subject,
            "" if fresh else " (already recorded)",
        )
        return fresh

    def list(self, *, limit: int = 100, target: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM actions"
        params: tuple[Any, ...] = ()
        if target:
            sql += " WHERE target = ?"
            params = (target,)
        sql += " ORDER BY id DESC LIMIT ?"
        rows: list[sqlite3.Row] = self._conn.execute(sql, (*params, limit)).fetchall()
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]

    def close(self) -> None:
        self._conn.close()


class AsyncActionLog(AsyncStore[ActionLog]):
    """The action log for async code (see bot.store.thread)."""

    async def record(
        self,
        target: str,
        kind: str,
        subject: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> bool:
        return await self._run(
            self.sync.record, target, kind, subject, payload, key=key, logger=logger
        )
