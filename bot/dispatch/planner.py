"""Batch dispatch: dependencies between issues, waves, the in-flight cap, and run records.

The planning is pure: `parse_dependencies` reads 'depends on #N', 'blocked by #N' and
open task-list items (`- [ ] #N`) from an issue body; `plan_batch` checks that every
dependency is known and that there is no cycle, groups the issues into waves (the
topological levels) and sends out only as many as the cap allows. `DispatchRuns` keeps
each issue's status (queued, dispatched, done, refused) in SQLite so queued work is
released when an earlier issue's PR is merged or closed.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bot.dispatch.commands import prose_lines
from bot.github.references import bare_numbers, references
from bot.store.db import connect

ItemStatus = Literal["queued", "dispatched", "done", "refused"]
ITEM_STATUSES: tuple[ItemStatus, ...] = ("queued", "dispatched", "done", "refused")

# Only bare `#12` counts (not `other/repo#12` or `abc#12`): same-repository issues.
# Every quantifier is bounded and each repetition starts with `#`, so a hostile body
# (e.g. "depends on" and 60,000 spaces) costs linear time.
_DEPENDENCY = re.compile(
    r"\b(?:depends\s{1,20}on|dependent\s{1,20}on|blocked\s{1,20}by)[ \t]{0,20}:?\s{0,20}"
    r"((?:#\d{1,9}\b(?:[ \t]{0,20}(?:,|and|&|\+)[ \t]{0,20})?){1,100})",
    re.IGNORECASE,
)
# An open task-list item that starts with a reference (`- [ ] #12`).
_OPEN_TASK = re.compile(r"[ \t]{0,20}[-*+][ \t]{1,20}\[ \][ \t]{1,20}(?=#)")


def parse_dependencies(body: str, *, number: int | None = None) -> list[int]:
    """Issue numbers this issue waits for, in order of first mention (itself excluded).

    Checked task-list items (`- [x] #N`) are finished work and are not dependencies.
    Code blocks and quoted replies say nothing about the plan (`prose`).
    """
    lines = prose_lines(body)
    text = "\n".join(lines)
    found: list[int] = []
    for match in _DEPENDENCY.finditer(text):
        found.extend(bare_numbers(match.group(1)))
    tasks = [line[m.end() :] for line in lines if "[ ]" in line and (m := _OPEN_TASK.match(line))]
    for rest in tasks:
        found.extend(ref.number for ref in references(rest)[:1] if ref.start == 0 and not ref.repo)
    return [n for n in dict.fromkeys(found) if n != number]


# -- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchIssue:
    """One issue asked for in a batch; `refusal` says why it may not go out (None: it may)."""

    number: int
    body: str = ""
    refusal: str | None = None


class InvalidBatch(ValueError):
    """The batch cannot be planned: unknown dependencies or a cycle. Nothing is sent."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class BatchPlan:
    waves: list[list[int]]
    # Batch-internal dependencies of every plannable issue (number -> numbers it waits for).
    dependencies: dict[int, frozenset[int]]
    refused: dict[int, str]
    dispatch_now: list[int]
    queued: list[int]
    max_in_flight: int
    in_flight_before: int = 0

    @property
    def order(self) -> list[int]:
        return [n for wave in self.waves for n in wave]

    def wave_of(self, number: int) -> int | None:
        for index, wave in enumerate(self.waves):
            if number in wave:
                return index
        return None


def plan_batch(
    issues: Sequence[BatchIssue],
    *,
    max_in_flight: int,
    known: Mapping[int, str] | None = None,
    in_flight: int = 0,
) -> BatchPlan:
    """Plan a batch, or raise InvalidBatch naming every unknown reference and cycle.

    `known` holds the states ("open"/"closed") of issues outside the batch: a closed one
    is a satisfied dependency; an open one cannot be waited for, so its dependents are
    refused. `in_flight` is how many issues of the repository are already out.
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    outside = known or {}
    by_number = {issue.number: issue for issue in issues}
    order = list(by_number)
    problems: list[str] = []
    refused: dict[int, str] = {n: i.refusal for n, i in by_number.items() if i.refusal}
    internal: dict[int, list[int]] = {}
    for number in order:
        internal[number] = []
        for dep in parse_dependencies(by_number[number].body, number=number):
            if dep in by_number:
                internal[number].append(dep)
            elif dep not in outside:
                problems.append(
                    f"#{number} depends on #{dep}, which is not in this batch and not known"
                )
            elif outside[dep] != "closed":
                refused.setdefault(
                    number, f"depends on #{dep}, which is still open and not in this batch"
                )
    problems.extend(
        f"dependency cycle: {' -> '.join(f'#{n}' for n in c)}" for c in find_cycles(internal)
    )
    if problems:
        raise InvalidBatch(problems)

    levels: dict[int, int] = {}
    for number in topological_order(internal, order):
        blocked_by = [d for d in internal[number] if d in refused]
        if number not in refused and blocked_by:
            refused[number] = f"depends on #{blocked_by[0]}, which is refused"
        if number not in refused:
            levels[number] = 1 + max((levels[d] for d in internal[number]), default=-1)
    waves: list[list[int]] = [[] for _ in range(1 + max(levels.values(), default=-1))]
    for number in order:
        if number in levels:
            waves[levels[number]].append(number)
    plan = BatchPlan(
        waves=waves,
        dependencies={n: frozenset(internal[n]) for n in levels},
        refused={n: refused[n] for n in order if n in refused},
        dispatch_now=[],
        queued=[],
        max_in_flight=max_in_flight,
    )
    return apply_cap(plan, in_flight)


def apply_cap(plan: BatchPlan, in_flight: int) -> BatchPlan:
    """Send the first wave's issues while slots are free; everything else is queued."""
    slots = max(0, plan.max_in_flight - in_flight)
    first = plan.waves[0] if plan.waves else []
    now = first[:slots]
    return replace(
        plan,
        dispatch_now=now,
        queued=[n for n in plan.order if n not in now],
        in_flight_before=in_flight,
    )


def topological_order(dependencies: Mapping[int, Sequence[int]], order: Sequence[int]) -> list[int]:
    """Dependencies before dependents; ties keep `order`. The graph must be acyclic."""
    done: set[int] = set()
    result: list[int] = []

    def visit(node: int) -> None:
        stack = [(node, iter(dependencies.get(node, ())))]
        while stack:
            current, deps = stack[-1]
            nxt = next((d for d in deps if d not in done), None)
            if nxt is None:
                stack.pop()
                if current not in done:
                    done.add(current)
                    result.append(current)
            else:
                stack.append((nxt, iter(dependencies.get(nxt, ()))))

    for node in order:
        if node not in done:
            visit(node)
    return result


def find_cycles(dependencies: Mapping[int, Sequence[int]]) -> list[list[int]]:
    """One concrete cycle per strongly connected component, e.g. [12, 15, 12].

    Each starts at its smallest issue and follows the 'depends on' edges, so the message
    reads '#12 -> #15 -> #12' for "#12 depends on #15, which depends on #12".
    """
    cycles = []
    for component in _strongly_connected(dependencies):
        if len(component) < 2:
            continue
        start = min(component)
        path = _path_back(dependencies, start, component)
        cycles.append([*path, start])
    return sorted(cycles)


def _strongly_connected(graph: Mapping[int, Sequence[int]]) -> list[set[int]]:
    """Tarjan's algorithm, iterative so that long chains do not hit the recursion limit."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[set[int]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _path_back(graph: Mapping[int, Sequence[int]], start: int, within: set[int]) -> list[int]:
    """Shortest walk start -> ... -> (edge back to start) inside one component."""
    parents: dict[int, int | None] = {start: None}
    queue = [start]
    for node in queue:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                path = [node]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])  # type: ignore[arg-type]
                return list(reversed(path))
            if nxt in within and nxt not in parents:
                parents[nxt] = node
                queue.append(nxt)
    return [start]


# -- releasing queued work ------------------------------------------------------------------


@dataclass(frozen=True)
class RunItem:
    run_id: int
    repo: str
    number: int
    position: int
    wave: int | None
    depends_on: tuple[int, ...]
    status: ItemStatus
    reason: str | None = None
    outcome: Literal["merged", "closed"] | None = None
    pr_number: int | None = None


def releasable(items: Sequence[RunItem], *, max_in_flight: int) -> list[RunItem]:
    """Queued items whose dependencies all merged, oldest run first, while slots last.

    A closed-but-unmerged PR frees its slot but does not satisfy its dependents: they
    keep waiting for a merged fix.
    """
    slots = max_in_flight - sum(1 for i in items if i.status == "dispatched")
    if slots <= 0:
        return []
    merged = {(i.run_id, i.number) for i in items if i.status == "done" and i.outcome == "merged"}
    ready = [
        i
        for i in items
        if i.status == "queued" and all((i.run_id, d) in merged for d in i.depends_on)
    ]
    ready.sort(key=lambda i: (i.run_id, i.wave or 0, i.position))
    return ready[:slots]


# -- run records ----------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS dispatch_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    key TEXT UNIQUE,                -- the caller's idempotency key (e.g. the comment's id)
    source TEXT NOT NULL,           -- command | label | window
    requested_by TEXT,
    max_in_flight INTEGER NOT NULL,
    notice_key TEXT,                -- outbox key of the Slack message about this run
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dispatch_items (
    run_id INTEGER NOT NULL REFERENCES dispatch_runs(id) ON DELETE CASCADE,
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    position INTEGER NOT NULL,
    wave INTEGER,                   -- NULL when refused
    depends_on TEXT NOT NULL,       -- JSON list of batch-internal dependencies
    status TEXT NOT NULL,           -- queued | dispatched | done | refused
    reason TEXT,
    outcome TEXT,                   -- merged | closed (done only)
    pr_number INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, number)
);
CREATE INDEX IF NOT EXISTS dispatch_items_issue ON dispatch_items (repo, number, status);
CREATE INDEX IF NOT EXISTS dispatch_items_status ON dispatch_items (repo, status);
CREATE TABLE IF NOT EXISTS dispatch_window (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    requested_by TEXT,
    labeled_at REAL NOT NULL,
    PRIMARY KEY (repo, number)
);
"""


@dataclass(frozen=True)
class DispatchRun:
    id: int
    repo: str
    key: str | None
    source: str
    requested_by: str | None
    max_in_flight: int
    notice_key: str | None
    created_at: float
    items: list[RunItem] = field(default_factory=list)

    def numbers(self, status: ItemStatus) -> list[int]:
        return [i.number for i in self.items if i.status == status]


@dataclass(frozen=True)
class StartedRun:
    run: DispatchRun
    plan: BatchPlan
    created: bool  # False: the key was seen before and `run` is the earlier record


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


def _plan_of(run: DispatchRun) -> BatchPlan:
    """The plan as recorded (for a repeated key, so the caller can answer the same way)."""
    planned = [i for i in run.items if i.wave is not None]
    waves: list[list[int]] = [
        [] for _ in range(1 + max((i.wave or 0 for i in planned), default=-1))
    ]
    for item in sorted(planned, key=lambda i: i.position):
        waves[item.wave or 0].append(item.number)
    return BatchPlan(
        waves=waves,
        dependencies={i.number: frozenset(i.depends_on) for i in planned},
        refused={i.number: i.reason or "" for i in run.items if i.status == "refused"},
        dispatch_now=run.numbers("dispatched"),
        queued=run.numbers("queued"),
        max_in_flight=run.max_in_flight,
    )


class DispatchRuns:
    """Run records: what each batch sent, what waits, and what is finished."""

    def __init__(self, path: Path | str, *, autocheckpoint: bool = True) -> None:
        self._conn = connect(path, check_same_thread=False, autocheckpoint=autocheckpoint)
        self._conn.executescript(SCHEMA)

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
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if key is not None:
                row = conn.execute("SELECT id FROM dispatch_runs WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    conn.execute("COMMIT")
                    run = self.get(row["id"])
                    assert run is not None
                    return StartedRun(run=run, plan=_plan_of(run), created=False)
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
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "UPDATE dispatch_items SET status = 'done', outcome = ?, pr_number = COALESCE(?, pr_number),"
                " updated_at = ? WHERE repo = ? AND number = ?"
                " AND (status IN ('queued', 'dispatched') OR (status = 'done' AND ? = 'merged'))",
                (outcome, pr_number, at, repo, number, outcome),
            )
            released = self._release(repo, max_in_flight, at)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return released

    def release(self, repo: str, *, max_in_flight: int, now: float | None = None) -> list[RunItem]:
        """Dispatch whatever is ready within the cap (e.g. after the cap was raised)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            released = self._release(repo, max_in_flight, time.time() if now is None else now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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

    def list_runs(self, *, repo: str | None = None, limit: int = 20) -> list[DispatchRun]:
        sql = (
            "SELECT id FROM dispatch_runs"
            + (" WHERE repo = ?" if repo else "")
            + " ORDER BY id DESC LIMIT ?"
        )
        params: tuple[Any, ...] = (repo, limit) if repo else (limit,)
        return [run for r in self._conn.execute(sql, params).fetchall() if (run := self.get(r[0]))]

    # -- the label window -------------------------------------------------------------
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
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            first = conn.execute(
                "SELECT MIN(labeled_at) FROM dispatch_window WHERE repo = ?", (repo,)
            ).fetchone()[0]
            if first is None or first + window_seconds > at:
                conn.execute("COMMIT")
                return []
            rows = conn.execute(
                "SELECT number, requested_by FROM dispatch_window WHERE repo = ? ORDER BY labeled_at, number",
                (repo,),
            ).fetchall()
            conn.execute("DELETE FROM dispatch_window WHERE repo = ?", (repo,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [(r["number"], r["requested_by"]) for r in rows]
