"""The durable inbox: every verified delivery is committed here before GitHub is answered.

All inbox writes run on one database thread. Deliveries that arrive together are
inserted in one transaction (group commit), so power-loss durability
(synchronous=FULL) costs one fsync per batch instead of one per delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.store import StoreError, StoreUnavailable
from bot.store.inbox import Delivery, InboxStore, Status

log = logging.getLogger(__name__)

# How often the WAL is checkpointed in the background.
CHECKPOINT_SECONDS = 1.0
# The most deliveries about one issue claimed together (a longer burst takes several batches).
MAX_BATCH = 50


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
        self._store = InboxStore(path, synchronous=synchronous)
        self._inline_commits = synchronous.upper() != "FULL"
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-db")
        self._pending: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._has_pending = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # Checkpoints fsync for tens of milliseconds: a thread and connection of their own,
        # so the intake's commits (FULL) never queue behind one.
        self._checkpoint_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="inbox-checkpoint"
        )
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
                    self._checkpoint_thread, self._store.checkpoint
                )
            except StoreError:
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
        await self._run(self._store.close_intake)
        await self._run(self._store.close_work)
        self._thread.shutdown(wait=True)
        self._checkpoint_thread.submit(self._store.close_checkpoint).result()
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
            return list(self._store.insert_batch(deliveries))
        except StoreUnavailable:  # locked, full, read-only: no row can go in
            raise
        except Exception:
            log.warning("a delivery in a group commit was refused; inserting them one by one")
        outcomes: list[bool | Exception] = []
        for delivery in deliveries:
            try:
                outcomes.extend(self._store.insert_batch([delivery]))
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.error("inbox refused delivery %s: %s", delivery.id, exc)
                outcomes.append(exc)
        return outcomes

    # -- work distribution -------------------------------------------------------------
    async def recover(self) -> int:
        """Deliveries that were running when the process died go back to pending."""
        count: int = await self._run(self._store.recover)
        if count:
            log.warning("recovered %d deliveries that were in progress at the last stop", count)
            self.new_work.set()
        return count

    async def claim(self) -> list[Delivery]:
        """Take the oldest ready delivery and every other waiting one about the same issue.

        Claiming a burst at once coalesces it; a subject already being worked on is skipped
        so two deliveries about one issue never run at the same time.
        """
        claimed: list[Delivery] = await self._run(self._claim, time.time())
        return claimed

    def _claim(self, now: float) -> list[Delivery]:
        with self._busy_lock:
            busy = list(self._busy)
        claimed = self._store.claim(now, busy, MAX_BATCH)
        if claimed and claimed[0].subject is not None:
            with self._busy_lock:
                self._busy.add(claimed[0].subject)
        return claimed

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
        at = self._store.next_ready_at()
        return None if at is None else max(0.0, at - now)

    async def finish(self, ids: Iterable[str], status: Status, error: str | None = None) -> None:
        await self._run(self._store.finish, list(ids), status, error, time.time())

    async def retry_later(
        self, ids: Iterable[str], delay: float, error: str, *, counted: bool = True
    ) -> None:
        """Back to the queue after `delay`; an uncounted retry (a rate limit) keeps its attempt."""
        await self._run(self._store.retry_later, list(ids), time.time() + delay, error, counted)

    # -- operators ---------------------------------------------------------------------
    async def counts(self) -> dict[str, int]:
        result: dict[str, int] = await self._run(self._store.counts)
        return result

    async def writable(self) -> bool:
        try:
            await self._run(self._store.probe_write)
        except StoreError:
            log.exception("inbox database is not writable")
            return False
        return True


def backoff_delay(attempt: int, base: float, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter for the `attempt`-th failure."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempt - 1))
