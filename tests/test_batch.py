"""Batch planning (pure) and the dispatch run record (real SQLite under tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.dispatch.commands import DispatchCommand, parse_dispatch_command
from bot.dispatch.planner import (
    BatchIssue,
    InvalidBatch,
    find_cycles,
    parse_dependencies,
    plan_batch,
)
from bot.store.runs import DispatchRuns

REPO = "octo/widgets"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Depends on #12", [12]),
        ("blocked by #3, #4 and #5.", [3, 4, 5]),
        ("This is BLOCKED BY: #7 & #8", [7, 8]),
        ("dependent on #2", [2]),
        ("- [ ] #21\n- [x] #22\n* [ ] #23 the parser", [21, 23]),
        ("depends on other/repo#4 and see #9", []),
        ("mentions #5 but depends on nothing", []),
        ("```\ndepends on #1\n```\n> blocked by #2\nblocked by #3", [3]),
        ("depends on #10\n- [ ] #10", [10]),
        ("depends on #40 (itself)", []),
    ],
)
def test_parse_dependencies(body: str, expected: list[int]) -> None:
    assert parse_dependencies(body, number=40) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/dispatch #12 #15 #18", DispatchCommand((12, 15, 18), False)),
        ("thanks!\n  /dispatch #3, #3 #4\n", DispatchCommand((3, 4), False)),
        ("/dispatch force", DispatchCommand((), True)),
        ("/DISPATCH", DispatchCommand((), False)),
        ("/dispatch forced #2", DispatchCommand((2,), False)),
        ("> /dispatch #1\nquoted, not asked", None),
        ("```\n/dispatch #1\n```", None),
        ("please /dispatch #1", None),
        ("/dispatcher #1", None),
    ],
)
def test_parse_dispatch_command(text: str, expected: DispatchCommand | None) -> None:
    assert parse_dispatch_command(text) == expected


def issues(**bodies: str) -> list[BatchIssue]:
    return [BatchIssue(int(name[1:]), body) for name, body in bodies.items()]


def test_chain_gives_one_issue_per_wave() -> None:
    plan = plan_batch(issues(i1="", i2="depends on #1", i3="blocked by #2"), max_in_flight=3)
    assert plan.waves == [[1], [2], [3]]
    assert plan.dispatch_now == [1] and plan.queued == [2, 3] and plan.refused == {}


def test_diamond_groups_the_middle_into_one_wave() -> None:
    plan = plan_batch(
        issues(i4="depends on #2 and #3", i2="depends on #1", i3="- [ ] #1", i1=""),
        max_in_flight=5,
    )
    assert plan.waves == [[1], [2, 3], [4]]
    assert plan.dependencies[4] == {2, 3}


@pytest.mark.parametrize(
    ("bodies", "cycle"),
    [
        ({"i12": "depends on #15", "i15": "blocked by #12"}, "#12 -> #15 -> #12"),
        (
            {"i15": "depends on #18", "i12": "depends on #15", "i18": "- [ ] #12", "i1": ""},
            "#12 -> #15 -> #18 -> #12",
        ),
    ],
)
def test_cycle_is_named(bodies: dict[str, str], cycle: str) -> None:
    with pytest.raises(InvalidBatch) as info:
        plan_batch(issues(**bodies), max_in_flight=3)
    assert info.value.problems == [f"dependency cycle: {cycle}"]


def test_unknown_dependency_refuses_the_batch_and_known_ones_are_judged() -> None:
    with pytest.raises(InvalidBatch) as info:
        plan_batch(issues(i1="depends on #99", i2=""), max_in_flight=3)
    assert info.value.problems == ["#1 depends on #99, which is not in this batch and not known"]

    plan = plan_batch(
        issues(i1="depends on #98", i2="depends on #97", i3="depends on #2", i4=""),
        max_in_flight=3,
        known={98: "closed", 97: "open"},
    )
    assert plan.waves == [[1, 4]]
    assert plan.refused == {
        2: "depends on #97, which is still open and not in this batch",
        3: "depends on #2, which is refused",
    }


def test_refused_issue_takes_its_dependents_along() -> None:
    batch = [
        BatchIssue(1, "", refusal="verdict is needs-info"),
        BatchIssue(2, "depends on #1"),
        BatchIssue(3, ""),
    ]
    plan = plan_batch(batch, max_in_flight=3)
    assert plan.waves == [[3]] and plan.dispatch_now == [3]
    assert plan.refused == {1: "verdict is needs-info", 2: "depends on #1, which is refused"}


def test_cap_counts_what_is_already_out() -> None:
    plan = plan_batch(issues(i1="", i2="", i3=""), max_in_flight=2, in_flight=1)
    assert plan.dispatch_now == [1] and plan.queued == [2, 3]
    assert plan_batch(issues(i1=""), max_in_flight=2, in_flight=5).dispatch_now == []


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.integers(1, 12), st.sets(st.integers(1, 12), max_size=3), min_size=1, max_size=12
    )
)
def test_waves_respect_every_dependency(graph: dict[int, set[int]]) -> None:
    batch = [
        BatchIssue(n, " ".join(f"depends on #{d}." for d in deps if d in graph))
        for n, deps in graph.items()
    ]
    try:
        plan = plan_batch(batch, max_in_flight=4)
    except InvalidBatch as exc:
        assert find_cycles(
            {n: [d for d in deps if d in graph and d != n] for n, deps in graph.items()}
        )
        assert all("cycle" in p for p in exc.problems)
        return
    assert sorted(plan.order) == sorted(graph)
    for number, deps in graph.items():
        for dep in (deps & graph.keys()) - {number}:
            assert plan.wave_of(dep) < plan.wave_of(number)  # type: ignore[operator]
    assert len(plan.dispatch_now) <= 4 and set(plan.dispatch_now) <= set(plan.waves[0])


# -- run records -------------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path: Path) -> DispatchRuns:
    store = DispatchRuns(tmp_path / "bot.sqlite3")
    yield store  # type: ignore[misc]
    store.close()


def statuses(runs: DispatchRuns, run_id: int) -> dict[int, str]:
    run = runs.get(run_id)
    assert run is not None
    return {i.number: i.status for i in run.items}


def test_cap_queues_work_and_a_merged_pr_releases_it(runs: DispatchRuns) -> None:
    batch = issues(i12="", i15="", i18="depends on #12", i20="")
    started = runs.start_run(REPO, batch, max_in_flight=2, key="comment:1", requested_by="maint")
    run_id = started.run.id
    assert started.created and started.plan.dispatch_now == [12, 15]
    assert statuses(runs, run_id) == {
        12: "dispatched",
        15: "dispatched",
        18: "queued",
        20: "queued",
    }

    # #15 merged: one slot frees, #20 is ready (#18 still waits for #12).
    released = runs.finish_issue(REPO, 15, merged=True, pr_number=101, max_in_flight=2)
    assert [i.number for i in released] == [20]
    # The same event again releases nothing more.
    assert runs.finish_issue(REPO, 15, merged=True, pr_number=101, max_in_flight=2) == []
    # #12's PR closed unmerged: the slot frees but #18 keeps waiting for a merged fix.
    assert runs.finish_issue(REPO, 12, merged=False, pr_number=102, max_in_flight=2) == []
    assert statuses(runs, run_id)[18] == "queued"
    # A later merged PR for #12 releases #18.
    released = runs.finish_issue(REPO, 12, merged=True, pr_number=103, max_in_flight=2)
    assert [i.number for i in released] == [18]
    run = runs.get(run_id)
    assert run is not None
    assert {i.number: (i.status, i.outcome, i.pr_number) for i in run.items} == {
        12: ("done", "merged", 103),
        15: ("done", "merged", 101),
        18: ("dispatched", None, None),
        20: ("dispatched", None, None),
    }
    assert runs.in_flight(REPO) == 2


def test_same_key_returns_the_first_run(runs: DispatchRuns) -> None:
    first = runs.start_run(REPO, issues(i1="", i2=""), max_in_flight=1, key="delivery-1")
    again = runs.start_run(REPO, issues(i1="", i2="", i3=""), max_in_flight=1, key="delivery-1")
    assert not again.created and again.run.id == first.run.id
    assert again.plan.dispatch_now == [1] and again.plan.queued == [2]
    assert [r.id for r in runs.runs_for_issue(REPO, 1)] == [first.run.id]


def test_cap_spans_runs_of_a_repository(runs: DispatchRuns) -> None:
    runs.start_run(REPO, issues(i1="", i2=""), max_in_flight=2, key="a")
    second = runs.start_run(REPO, issues(i3=""), max_in_flight=2, key="b")
    other = runs.start_run("octo/other", issues(i3=""), max_in_flight=2, key="c")
    assert second.plan.dispatch_now == [] and second.plan.queued == [3]
    assert other.plan.dispatch_now == [3]
    released = runs.finish_issue(REPO, 1, merged=True, max_in_flight=2)
    assert [(i.run_id, i.number) for i in released] == [(second.run.id, 3)]
    assert [r.id for r in runs.runs_for_issue(REPO, 3)] == [second.run.id]


def test_invalid_batch_records_nothing(runs: DispatchRuns) -> None:
    with pytest.raises(InvalidBatch, match="#1 -> #2 -> #1"):
        runs.start_run(
            REPO, issues(i1="depends on #2", i2="depends on #1"), max_in_flight=2, key="x"
        )
    assert runs.runs_for_issue(REPO, 1) == runs.runs_for_issue(REPO, 2) == []
    assert runs.start_run(REPO, issues(i1=""), max_in_flight=2, key="x").created


def test_refused_items_are_recorded_with_why(runs: DispatchRuns) -> None:
    batch = [BatchIssue(5, "", refusal="verdict is question"), BatchIssue(6, "")]
    started = runs.start_run(REPO, batch, max_in_flight=2, notice_key="plan:1")
    assert statuses(runs, started.run.id) == {5: "refused", 6: "dispatched"}
    assert started.run.items[0].reason == "verdict is question"
    assert started.run.notice_key == "plan:1"
    runs.set_notice_key(started.run.id, "plan:2")
    run = runs.get(started.run.id)
    assert run is not None and run.notice_key == "plan:2"


def test_labels_within_the_window_form_one_batch(runs: DispatchRuns) -> None:
    assert runs.note_label(REPO, 12, requested_by="maint", at=100.0)
    assert runs.note_label(REPO, 15, requested_by="maint", at=130.0)
    assert not runs.note_label(REPO, 12, requested_by="maint", at=140.0)  # redelivered
    assert runs.window_due_in(REPO, window_seconds=60, now=150.0) == 10.0
    assert runs.take_window(REPO, window_seconds=60, now=150.0) == []
    assert runs.take_window(REPO, window_seconds=60, now=160.0) == [(12, "maint"), (15, "maint")]
    assert runs.take_window(REPO, window_seconds=60, now=500.0) == []
    assert runs.window_due_in(REPO, window_seconds=60) is None
