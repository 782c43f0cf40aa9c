"""The durable inbox: every verified delivery is committed here before GitHub is answered.

All inbox writes run on one database thread. Deliveries that arrive together are
inserted in one transaction (group commit), so power-loss durability
(synchronous=FULL) costs one fsync per batch instead of one per delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bot.crashpoints import crashpoint
from bot.store.db import connect

log = logging.getLogger(__name__)

Status = Literal["pending", "running", "done", "failed", "dead", "ignored"]
# How often the WAL is checkpointed in the background.
CHECKPOINT_SECONDS = 1.0
# The most deliveries about one issue claimed together (a longer burst takes several batches).
MAX_BATCH = 50
STATUSES: tuple[Status, ...] = ("pending", "running", "done", "failed", "dead", "ignored")

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,            -- X-GitHub-Delivery
    event TEXT NOT NULL,
    action TEXT,
    installation_id INTEGER,
    repo TEXT,
    subject TEXT,                       -- owner/name#N: deliveries about one issue run one at a time
    payload BLOB NOT NULL,
    received_at REAL NOT NULL,
    not_before REAL NOT NULL,           -- debounce and retry backoff
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_ready ON deliveries (status, not_before, seq);
CREATE INDEX IF NOT EXISTS deliveries_subject ON deliveries (subject, status);
"""


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


def _text(value: Any) -> str | None:
    """A string SQLite can store as UTF-8 (a lone surrogate is escaped), else None."""
    if not isinstance(value, str):
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _integer(value: Any) -> int | None:
    """An integer SQLite can store (64-bit), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def describe(
    event: str, data: dict[str, Any], delivery_id: str, payload: bytes, *, now: float, delay: float
) -> Delivery:
    """Pull the routing facts out of a payload once, at intake.

    Whatever the payload holds, the facts are storable: a field of the wrong type or out
    of range is left out rather than failing the insert (and its group commit).
    """
    installation = data.get("installation")
    repository = data.get("repository")
    repo = _text(repository.get("full_name")) if isinstance(repository, dict) else None
    number = None
    for key in ("issue", "pull_request"):
        item = data.get(key)
        if isinstance(item, dict) and _integer(item.get("number")) is not None:
            number = item["number"]
            break
    return Delivery(
        id=delivery_id,
        event=event,
        payload=payload,
        action=_text(data.get("action")),
        installation_id=_integer(installation.get("id"))
        if isinstance(installation, dict)
        else None,
        repo=repo,
        subject=f"{repo}#{number}" if repo and number is not None else None,
        received_at=now,
        not_before=now + delay,
    )


class Inbox:
    """Async front of the deliveries table; the table is the only queue."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self._conn = connect(
            path, synchronous=synchronous, check_same_thread=False, autocheckpoint=False
        )
        self._conn.executescript(SCHEMA)
        self._inline_commits = synchronous.upper() != "FULL"
        # Work-state changes (claim, finish, retry) need no fsync of their own: losing one
        # to a power cut only means a delivery is processed again. The next intake commit
        # makes them durable too.
        self._work = connect(
            path, synchronous="NORMAL", check_same_thread=False, autocheckpoint=False
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-db")
        self._pending: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._has_pending = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # Checkpoints fsync for tens of milliseconds: a thread and connection of their own,
        # so the intake's commits (FULL) never queue behind one.
        self._checkpoint_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="inbox-checkpoint"
        )
        self._checkpoint_conn = connect(path, check_same_thread=False, autocheckpoint=False)
        self._checkpointer: asyncio.Task[None] | None = None
        # Subjects being worked on; read and written only on the database thread.
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self.new_work = asyncio.Event()
        # Monotonic time of the last delivery handed in; workers defer to intake during bursts.
        self.last_intake = 0.0

    # -- running the database thread -------------------------------------------------
    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is None:
            self._writer = loop.create_task(self._write_batches(), name="inbox-writer")
        if self._checkpointer is None:
            self._checkpointer = loop.create_task(
                self._checkpoint_regularly(), name="inbox-checkpointer"
            )

    async def _checkpoint_regularly(self) -> None:
        """WAL checkpoints on the database thread, never inside a commit on the event loop.

        The service opens every connection with autocheckpoint off; this is the one place
        the WAL is copied back into the database (a passive checkpoint blocks no writer).
        """
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._checkpoint_thread,
                    self._checkpoint_conn.execute,
                    "PRAGMA wal_checkpoint(PASSIVE)",
                )
            except sqlite3.Error:
                log.exception("WAL checkpoint failed; trying again in %.0f s", CHECKPOINT_SECONDS)

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._writer is not None:
            while self._pending:
                await asyncio.sleep(0.001)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self._run(self._conn.close)
        await self._run(self._work.close)
        self._thread.shutdown(wait=True)
        self._checkpoint_thread.submit(self._checkpoint_conn.close).result()
        self._checkpoint_thread.shutdown(wait=True)

    # -- intake (group commit) --------------------------------------------------------
    async def add(self, delivery: Delivery) -> bool:
        """Commit `delivery`; False when its id was already in the inbox."""
        if self._writer is None:
            self.start()
        loop = asyncio.get_running_loop()
        self.last_intake = loop.time()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((delivery, future))
        self._has_pending.set()
        return await future

    async def _write_batches(self) -> None:
        while True:
            await self._has_pending.wait()
            self._has_pending.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            deliveries = [d for d, _ in batch]
            try:
                if self._inline_commits:
                    # Without fsync a commit takes microseconds: cheaper here than a thread hop.
                    outcomes = self._insert_batch(deliveries)
                else:
                    outcomes = await self._run(self._insert_batch, deliveries)
            except Exception as exc:  # the database itself failed: none of it was acknowledged
                log.exception("inbox write failed for %d deliveries", len(batch))
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            if any(outcome is True for outcome in outcomes):
                self.new_work.set()

    def _insert_batch(self, deliveries: list[Delivery]) -> list[bool | Exception]:
        """Insert in one transaction; when a row is refused, each row in a transaction of its own.

        A row the database refuses fails alone (its future gets the error) and never takes
        the acknowledgement of its neighbours with it.
        """
        try:
            return list(self._insert_rows(deliveries))
        except sqlite3.OperationalError:  # locked, full, read-only: no row can go in
            raise
        except Exception:
            log.warning("a delivery in a group commit was refused; inserting them one by one")
        outcomes: list[bool | Exception] = []
        for delivery in deliveries:
            try:
                outcomes.extend(self._insert_rows([delivery]))
            except sqlite3.OperationalError:
                raise
            except Exception as exc:
                log.error("inbox refused delivery %s: %s", delivery.id, exc)
                outcomes.append(exc)
        return outcomes

    def _insert_rows(self, deliveries: list[Delivery]) -> list[bool]:
        conn = self._conn
        results = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for d in deliveries:
                crashpoint("group_commit")
                cur = conn.execute(
                    "INSERT OR IGNORE INTO deliveries (id, event, action, installation_id, repo, subject,"
                    " payload, received_at, not_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return results

    # -- work distribution -------------------------------------------------------------
    async def recover(self) -> int:
        """Deliveries that were running when the process died go back to pending."""
        count: int = await self._run(self._recover)
        if count:
            log.warning("recovered %d deliveries that were in progress at the last stop", count)
            self.new_work.set()
        return count

    def _recover(self) -> int:
        return self._work.execute(
            "UPDATE deliveries SET status='pending' WHERE status='running'"
        ).rowcount

    async def claim(self) -> list[Delivery]:
        """Take the oldest ready delivery and every other waiting one about the same issue.

        Claiming a burst at once coalesces it; a subject already being worked on is skipped
        so two deliveries about one issue never run at the same time.
        """
        claimed: list[Delivery] = await self._run(self._claim, time.time())
        return claimed

    def _claim(self, now: float) -> list[Delivery]:
        conn = self._work
        with self._busy_lock:
            busy = list(self._busy)
        placeholders = ",".join("?" * len(busy))
        exclude = f"AND (subject IS NULL OR subject NOT IN ({placeholders}))" if busy else ""
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT * FROM deliveries WHERE status IN ('pending', 'failed') AND not_before <= ? "
                f"{exclude} ORDER BY seq LIMIT 1",
                (now, *busy),
            ).fetchone()
            if row is None:
                conn.execute("COMMIT")
                return []
            if row["subject"] is None:
                rows = [row]
            else:
                # Fresh deliveries about the same issue join the batch even while debounced;
                # ones backing off after a failure wait for their time.
                rows = conn.execute(
                    "SELECT * FROM deliveries WHERE subject = ? AND status IN ('pending', 'failed')"
                    " AND (attempts = 0 OR not_before <= ?) ORDER BY seq LIMIT ?",
                    (row["subject"], now, MAX_BATCH),
                ).fetchall()
            conn.executemany(
                "UPDATE deliveries SET status='running', attempts = attempts + 1 WHERE seq = ?",
                [(r["seq"],) for r in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if row["subject"] is not None:
            with self._busy_lock:
                self._busy.add(row["subject"])
        return [replace(Delivery.from_row(r), attempts=r["attempts"] + 1) for r in rows]

    def release(self, subject: str | None) -> None:
        if subject is not None:
            with self._busy_lock:
                self._busy.discard(subject)
            self.new_work.set()

    async def next_ready_in(self) -> float | None:
        """Seconds until the next waiting delivery becomes ready (None when none waits)."""
        value: float | None = await self._run(self._next_ready_in, time.time())
        return value

    def _next_ready_in(self, now: float) -> float | None:
        row = self._work.execute(
            "SELECT MIN(not_before) FROM deliveries WHERE status IN ('pending', 'failed')"
        ).fetchone()
        return None if row[0] is None else max(0.0, row[0] - now)

    async def finish(self, ids: Iterable[str], status: Status, error: str | None = None) -> None:
        await self._run(self._finish, list(ids), status, error, time.time())

    def _finish(self, ids: list[str], status: Status, error: str | None, now: float) -> None:
        completed = 1 if status in ("done", "ignored") else 0
        self._work.executemany(
            "UPDATE deliveries SET status=?, last_error=?, finished_at=?, completions = completions + ?"
            " WHERE id=? AND status='running'",
            [(status, error, now, completed, i) for i in ids],
        )

    async def retry_later(
        self, ids: Iterable[str], delay: float, error: str, *, counted: bool = True
    ) -> None:
        """Back to the queue after `delay`; an uncounted retry (a rate limit) keeps its attempt."""
        await self._run(self._retry_later, list(ids), delay, error, counted, time.time())

    def _retry_later(
        self, ids: list[str], delay: float, error: str, counted: bool, now: float
    ) -> None:
        self._work.executemany(
            "UPDATE deliveries SET status='failed', last_error=?, not_before=?, attempts = attempts - ?"
            " WHERE id=? AND status='running'",
            [(error, now + delay, 0 if counted else 1, i) for i in ids],
        )

    # -- operators ---------------------------------------------------------------------
    async def counts(self) -> dict[str, int]:
        result: dict[str, int] = await self._run(self._counts)
        return result

    def _counts(self) -> dict[str, int]:
        rows = self._work.execute(
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
        ).fetchall()
        return {status: 0 for status in STATUSES} | {r[0]: r[1] for r in rows}

    async def writable(self) -> bool:
        try:
            await self._run(self._probe_write)
        except sqlite3.Error:
            log.exception("inbox database is not writable")
            return False
        return True

    def _probe_write(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("ROLLBACK")


def backoff_delay(attempt: int, base: float, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter for the `attempt`-th failure."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempt - 1))


class InboxQueries:
    """Synchronous read and replay access for the command line."""

    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)

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
