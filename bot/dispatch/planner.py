"""Batch dispatch: dependencies between issues, waves, the in-flight cap, and run records.

The planning is pure: `parse_dependencies` reads 'depends on #N', 'blocked by #N' and
open task-list items (`- [ ] #N`) from an issue body; `plan_batch` checks that every
dependency is known and that there is no cycle, groups the issues into waves (the
topological levels) and sends out only as many as the cap allows. `bot.store.runs.DispatchRuns`
keeps each issue's status (queued, dispatched, done, refused) so queued work is released
when an earlier issue's PR is merged or closed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from bot.dispatch.commands import prose_lines
from bot.github.references import bare_numbers, references

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


MAX_DEPENDENCIES = 100


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
        if len(found) >= MAX_DEPENDENCIES:  # no plan is this large: the rest is noise
            break
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


# -- run records (stored by bot.store.runs) ------------------------------------------------


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


def plan_of_run(run: DispatchRun) -> BatchPlan:
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
