"""Dispatch run records: what each batch sent, what waits, and the label window.

The planning itself is pure and lives in bot.dispatch.planner; this module records its
results atomically and releases queued work as PRs finish.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from bot.dispatch.planner import (
    BatchIssue,
    DispatchRun,
    ItemStatus,
    RunItem,
    StartedRun,
    plan_batch,
    plan_of_run,
    releasable,
)
from bot.store.db import connect, transaction
from bot.store.thread import AsyncStore


def _item(row: sqlite3.Row) -> RunItem:
    return RunItem(
        run_id=row["run_id"],
        repo=row["repo"],
        number=row["number"],
        position=row["position"],
        wave=row["wave"],
        depends_on=tuple(json.loads(row["depends_on"])),
        status=row["status"],
        reason=row["reason"],
        outcome=row["outcome"],
        pr_number=row["pr_number"],
    )


class DispatchRuns:
    """Run records: what each batch sent, what waits, and what is finished."""

    def __init__(self, path: Path | str, *, autocheckpoint: bool = True) -> None:
        self._conn = connect(path, check_same_thread=False, autocheckpoint=autocheckpoint)

    def close(self) -> None:
        self._conn.close()

    # -- starting a run ---------------------------------------------------------------
    def start_run(
        self,
        repo: str,
        issues: Sequence[BatchIssue],
        *,
        max_in_flight: int,
        key: str | None = None,
        known: Mapping[int, str] | None = None,
        source: str = "command",
        requested_by: str | None = None,
        notice_key: str | None = None,
        now: float | None = None,
    ) -> StartedRun:
        """Plan and record a batch (a single dispatch is a batch of one) atomically.

        The cap counts every issue of `repo` already dispatched by earlier runs. A `key`
        seen before returns the earlier run unchanged (a redelivered event plans nothing
        new). Raises InvalidBatch, recording nothing, when the batch cannot be planned.
        """
        at = time.time() if now is None else now
        with transaction(self._conn) as conn:
            if key is not None:
                row = conn.execute("SELECT id FROM dispatch_runs WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    run = self.get(row["id"])
                    assert run is not None
                    return StartedRun(run=run, plan=plan_of_run(run), created=False)
            plan = plan_batch(
                issues, max_in_flight=max_in_flight, known=known, in_flight=self._in_flight(repo)
            )
            run_id = conn.execute(
                "INSERT INTO dispatch_runs (repo, key, source, requested_by, max_in_flight, notice_key,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (repo, key, source, requested_by, max_in_flight, notice_key, at),
            ).lastrowid
            rows = []
            for position, issue in enumerate(dict.fromkeys(i.number for i in issues)):
                status: ItemStatus = (
                    "refused"
                    if issue in plan.refused
                    else "dispatched"
                    if issue in plan.dispatch_now
                    else "queued"
                )
                deps = sorted(plan.dependencies.get(issue, ()))
                rows.append(
                    (
                        run_id,
                        repo,
                        issue,
                        position,
                        plan.wave_of(issue),
                        json.dumps(deps),
                        status,
                        plan.refused.get(issue),
                        at,
                    )
                )
            conn.executemany(
                "INSERT INTO dispatch_items (run_id, repo, number, position, wave, depends_on, status,"
                " reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        assert run_id is not None
        run = self.get(run_id)
        assert run is not None
        return StartedRun(run=run, plan=plan, created=True)

    def set_notice_key(self, run_id: int, notice_key: str) -> None:
        self._conn.execute(
            "UPDATE dispatch_runs SET notice_key = ? WHERE id = ?", (notice_key, run_id)
        )

    # -- PRs finishing work -----------------------------------------------------------
    def finish_issue(
        self,
        repo: str,
        number: int,
        *,
        merged: bool,
        max_in_flight: int,
        pr_number: int | None = None,
        now: float | None = None,
    ) -> list[RunItem]:
        """A PR for `number` was merged (or closed unmerged): mark it done, release work.

        Returns the queued items that are now dispatched; the caller sends each one's
        notice. Merged beats closed, so a later merged PR still releases dependents, and
        the same event twice releases nothing more.
        """
        at = time.time() if now is None else now
        outcome = "merged" if merged else "closed"
        with transaction(self._conn) as conn:
            conn.execute(
                "UPDATE dispatch_items SET status = 'done', outcome = ?, pr_number = COALESCE(?, pr_number),"
                " updated_at = ? WHERE repo = ? AND number = ?"
                " AND (status IN ('queued', 'dispatched') OR (status = 'done' AND ? = 'merged'))",
                (outcome, pr_number, at, repo, number, outcome),
            )
            released = self._release(repo, max_in_flight, at)
        return released

    def _release(self, repo: str, max_in_flight: int, at: float) -> list[RunItem]:
        active = self._conn.execute(
            "SELECT * FROM dispatch_items WHERE run_id IN"
            " (SELECT DISTINCT run_id FROM dispatch_items WHERE repo = ? AND status IN ('queued', 'dispatched'))",
            (repo,),
        ).fetchall()
        # The cap counts what is in flight across the repository, not per run.
        items = [_item(r) for r in active]
        chosen = releasable(items, max_in_flight=max_in_flight)
        self._conn.executemany(
            "UPDATE dispatch_items SET status = 'dispatched', updated_at = ? WHERE run_id = ? AND number = ?",
            [(at, i.run_id, i.number) for i in chosen],
        )
        return [replace(i, status="dispatched") for i in chosen]

    # -- reading ----------------------------------------------------------------------
    def _in_flight(self, repo: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM dispatch_items WHERE repo = ? AND status = 'dispatched'", (repo,)
        ).fetchone()
        return int(row[0])

    def in_flight(self, repo: str) -> int:
        return self._in_flight(repo)

    def get(self, run_id: int) -> DispatchRun | None:
        row = self._conn.execute("SELECT * FROM dispatch_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        items = self._conn.execute(
            "SELECT * FROM dispatch_items WHERE run_id = ? ORDER BY position", (run_id,)
        ).fetchall()
        return DispatchRun(
            id=row["id"],
            repo=row["repo"],
            key=row["key"],
            source=row["source"],
            requested_by=row["requested_by"],
            max_in_flight=row["max_in_flight"],
            notice_key=row["notice_key"],
            created_at=row["created_at"],
            items=[_item(r) for r in items],
        )

    def runs_for_issue(self, repo: str, number: int) -> list[DispatchRun]:
        """Every run that holds the issue, newest first (for PR follow-ups)."""
        ids = self._conn.execute(
            "SELECT run_id FROM dispatch_items WHERE repo = ? AND number = ? ORDER BY run_id DESC",
            (repo, number),
        ).fetchall()
        return [run for r in ids if (run := self.get(r[0])) is not None]

    def note_label(
        self, repo: str, number: int, *, requested_by: str | None, at: float | None = None
    ) -> bool:
        """Remember a dispatch label; labels within the window form one batch. False: already noted."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO dispatch_window (repo, number, requested_by, labeled_at) VALUES (?, ?, ?, ?)",
            (repo, number, requested_by, time.time() if at is None else at),
        )
        return cur.rowcount == 1

    def window_due_in(
        self, repo: str, *, window_seconds: float, now: float | None = None
    ) -> float | None:
        """Seconds until the repo's label window closes (None: nothing is waiting)."""
        row = self._conn.execute(
            "SELECT MIN(labeled_at) FROM dispatch_window WHERE repo = ?", (repo,)
        ).fetchone()
        if row[0] is None:
            return None
        return max(0.0, row[0] + window_seconds - (time.time() if now is None else now))

    def take_window(
        self, repo: str, *, window_seconds: float, now: float | None = None
    ) -> list[tuple[int, str | None]]:
        """The labelled issues once the window since the first label has passed (else [])."""
        at = time.time() if now is None else now
        with transaction(self._conn) as conn:
            first = conn.execute(
                "SELECT MIN(labeled_at) FROM dispatch_window WHERE repo = ?", (repo,)
            ).fetchone()[0]
            if first is None or first + window_seconds > at:
                return []
            rows = conn.execute(
                "SELECT number, requested_by FROM dispatch_window WHERE repo = ? ORDER BY labeled_at, number",
                (repo,),
            ).fetchall()
            conn.execute("DELETE FROM dispatch_window WHERE repo = ?", (repo,))
        return [(r["number"], r["requested_by"]) for r in rows]


class AsyncDispatchRuns(AsyncStore[DispatchRuns]):
    """Run records for async code (see bot.store.thread); same arguments as DispatchRuns."""

    async def start_run(
        self,
        repo: str,
        issues: Sequence[BatchIssue],
        *,
        max_in_flight: int,
        key: str | None = None,
        known: Mapping[int, str] | None = None,
        source: str = "command",
        requested_by: str | None = None,
        notice_key: str | None = None,
    ) -> StartedRun:
        return await self._run(
            self.sync.start_run,
            repo,
            issues,
            max_in_flight=max_in_flight,
            key=key,
            known=known,
            source=source,
            requested_by=requested_by,
            notice_key=notice_key,
        )

    async def set_notice_key(self, run_id: int, notice_key: str) -> None:
        await self._run(self.sync.set_notice_key, run_id, notice_key)

    async def finish_issue(
        self, repo: str, number: int, *, merged: bool, max_in_flight: int, pr_number: int | None
    ) -> list[RunItem]:
        return await self._run(
            self.sync.finish_issue,
            repo,
            number,
            merged=merged,
            max_in_flight=max_in_flight,
            pr_number=pr_number,
        )

    async def get(self, run_id: int) -> DispatchRun | None:
        return await self._run(self.sync.get, run_id)

    async def runs_for_issue(self, repo: str, number: int) -> list[DispatchRun]:
        return await self._run(self.sync.runs_for_issue, repo, number)

    async def note_label(self, repo: str, number: int, *, requested_by: str | None) -> bool:
        return await self._run(self.sync.note_label, repo, number, requested_by=requested_by)

    async def window_due_in(self, repo: str, *, window_seconds: float) -> float | None:
        return await self._run(self.sync.window_due_in, repo, window_seconds=window_seconds)

    async def take_window(
        self, repo: str, *, window_seconds: float
    ) -> list[tuple[int, str | None]]:
        return await self._run(self.sync.take_window, repo, window_seconds=window_seconds)
