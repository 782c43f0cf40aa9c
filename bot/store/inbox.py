"""The deliveries table: the durable queue behind the inbox.

Synchronous and engine-specific; `bot.delivery.inbox.Inbox` decides which thread runs
each call (intake group commits, work-state changes, checkpoints).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bot.crashpoints import crashpoint
from bot.store.db import can_write, connect, transaction

Status = Literal["pending", "running", "done", "failed", "dead", "ignored"]
STATUSES: tuple[Status, ...] = ("pending", "running", "done", "failed", "dead", "ignored")


@dataclass(frozen=True)
class Delivery:
    id: str
    event: str
    payload: bytes
    action: str | None = None
    installation_id: int | None = None
    repo: str | None = None
    subject: str | None = None
    received_at: float = 0.0
    not_before: float = 0.0
    attempts: int = 0

    def data(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Delivery:
        return cls(
            id=row["id"],
            event=row["event"],
            payload=bytes(row["payload"]),
            action=row["action"],
            installation_id=row["installation_id"],
            repo=row["repo"],
            subject=row["subject"],
            received_at=row["received_at"],
            not_before=row["not_before"],
            attempts=row["attempts"],
        )


class InboxStore:
    """Three connections, one per role, so no role waits on another's locks or fsyncs.

    intake: commits deliveries (at the configured `synchronous`, FULL for power-loss
    durability). work: claims and settles them; these need no fsync of their own: losing
    one to a power cut only means a delivery is processed again, and the next intake
    commit makes them durable too. checkpoint: copies the WAL back into the database.
    """

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self._intake = connect(
            path, synchronous=synchronous, check_same_thread=False, autocheckpoint=False
        )
        self._work = connect(
            path, synchronous="NORMAL", check_same_thread=False, autocheckpoint=False
        )
        self._checkpoint = connect(path, check_same_thread=False, autocheckpoint=False)

    # -- intake ------------------------------------------------------------------------
    def insert_batch(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Commit `deliveries` in one transaction; for each, False when its id was known."""
        results = []
        with transaction(self._intake) as conn:
            for d in deliveries:
                crashpoint("group_commit")
                cur = conn.execute(
                    "INSERT OR IGNORE INTO deliveries (id, event, action, installation_id, repo,"
                    " subject, payload, received_at, not_before)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        d.id,
                        d.event,
                        d.action,
                        d.installation_id,
                        d.repo,
                        d.subject,
                        d.payload,
                        d.received_at,
                        d.not_before,
                    ),
                )
                results.append(cur.rowcount == 1)
        return results

    def probe_write(self) -> None:
        """Raises sqlite3.Error when the intake cannot take the write lock."""
        can_write(self._intake)

    def close_intake(self) -> None:
        self._intake.close()

    # -- work --------------------------------------------------------------------------
    def recover(self) -> int:
        """Running deliveries (of a process that died) go back to pending; how many."""
        return self._work.execute(
            "UPDATE deliveries SET status='pending' WHERE status='running'"
        ).rowcount

    def claim(self, now: float, busy: Collection[str], limit: int) -> list[Delivery]:
        """The oldest ready delivery whose subject is not `busy`, with up to `limit` waiting
        ones about the same subject, marked running (attempts counted)."""
        skipped = list(busy)
        placeholders = ",".join("?" * len(skipped))
        exclude = f"AND (subject IS NULL OR subject NOT IN ({placeholders}))" if skipped else ""
        with transaction(self._work) as conn:
            row = conn.execute(
                "SELECT * FROM deliveries WHERE status IN ('pending', 'failed') AND not_before <= ? "
                f"{exclude} ORDER BY seq LIMIT 1",
                (now, *skipped),
            ).fetchone()
            if row is None:
                return []
            if row["subject"] is None:
                rows = [row]
            else:
                # Fresh deliveries about the same issue join the batch even while debounced;
                # ones backing off after a failure wait for their time.
                rows = conn.execute(
                    "SELECT * FROM deliveries WHERE subject = ? AND status IN ('pending', 'failed')"
                    " AND (attempts = 0 OR not_before <= ?) ORDER BY seq LIMIT ?",
                    (row["subject"], now, limit),
                ).fetchall()
            conn.executemany(
                "UPDATE deliveries SET status='running', attempts = attempts + 1 WHERE seq = ?",
                [(r["seq"],) for r in rows],
            )
        return [replace(Delivery.from_row(r), attempts=r["attempts"] + 1) for r in rows]

    def next_ready_at(self) -> float | None:
        """When the next waiting delivery becomes ready (None when none waits)."""
        row = self._work.execute(
            "SELECT MIN(not_before) FROM deliveries WHERE status IN ('pending', 'failed')"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def finish(self, ids: Sequence[str], status: Status, error: str | None, now: float) -> None:
        completed = 1 if status in ("done", "ignored") else 0
        self._work.executemany(
            "UPDATE deliveries SET status=?, last_error=?, finished_at=?,"
            " completions = completions + ? WHERE id=? AND status='running'",
            [(status, error, now, completed, i) for i in ids],
        )

    def retry_later(self, ids: Sequence[str], not_before: float, error: str, counted: bool) -> None:
        """Back to the queue at `not_before`; an uncounted retry keeps its attempt."""
        self._work.executemany(
            "UPDATE deliveries SET status='failed', last_error=?, not_before=?,"
            " attempts = attempts - ? WHERE id=? AND status='running'",
            [(error, not_before, 0 if counted else 1, i) for i in ids],
        )

    def counts(self) -> dict[str, int]:
        rows = self._work.execute(
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
        ).fetchall()
        return {status: 0 for status in STATUSES} | {r[0]: r[1] for r in rows}

    def close_work(self) -> None:
        self._work.close()

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint(self) -> None:
        """A passive WAL checkpoint: blocks no writer."""
        self._checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close_checkpoint(self) -> None:
        self._checkpoint.close()


class InboxQueries:
    """Synchronous read and replay access for the command line."""

    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)

    def recent(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, event, action, repo, subject, status, attempts, completions, last_error,"
            " received_at, finished_at FROM deliveries"
        )
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    def replay(self, delivery_id: str) -> bool:
        """Queue a delivery again (any status but running); the service picks it up."""
        cur = self._conn.execute(
            "UPDATE deliveries SET status='pending', attempts=0, not_before=?, last_error=NULL"
            " WHERE id=? AND status != 'running'",
            (time.time(), delivery_id),
        )
        return cur.rowcount == 1

    def known(self, ids: list[str]) -> set[str]:
        """Which of `ids` the inbox holds (the redelivery catch-up asks only for the others)."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._conn.execute(
                f"SELECT id FROM deliveries WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            found.update(r[0] for r in rows)
        return found

    def close(self) -> None:
        self._conn.close()
