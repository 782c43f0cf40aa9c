"""The candidate ranking (pure, table-tested), its store query and `agent-dispatch candidates`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.dashboard.candidates import CandidateFacts, rank
from bot.store.dashboard import DashboardQueries
from tests.dashboard_seed import NOW, PRIVATE, PUBLIC, seed_small


def facts(number: int, **values: object) -> CandidateFacts:
    return CandidateFacts(repo="o/r", number=number, title=f"issue {number}", **values)  # type: ignore[arg-type]


# (name, candidates, expected order of numbers)
ORDERS = [
    ("reactions beat silence", [facts(1), facts(2, reactions=10)], [2, 1]),
    (
        "a priority label beats many reactions",
        [facts(1, reactions=50), facts(2, labels=("priority: high",))],
        [2, 1],
    ),
    (
        "blocking other work counts",
        [facts(1, comments=3), facts(2, blocks=(7,))],
        [2, 1],
    ),
    (
        "a `blocking` label counts like one blocked issue",
        [facts(1), facts(2, labels=("Blocking",))],
        [2, 1],
    ),
    ("duplicates count", [facts(1, comments=2), facts(2, duplicates=(5, 6))], [2, 1]),
    (
        "older issues win a tie",
        [
            facts(1, created_at=NOW - timedelta(days=3)),
            facts(2, created_at=NOW - timedelta(days=300)),
        ],
        [2, 1],
    ),
    (
        "equal impact: the more confident verdict first",
        [facts(1, score=0.5), facts(2, score=0.9)],
        [2, 1],
    ),
    ("all equal: lower number first", [facts(2), facts(1)], [1, 2]),
    (
        "reactions saturate: 100 reactions do not beat a P0",
        [facts(1, reactions=100, comments=100), facts(2, labels=("P0",))],
        [2, 1],
    ),
]


@pytest.mark.parametrize("name, candidates, order", ORDERS, ids=[o[0] for o in ORDERS])
def test_ranking_order(name: str, candidates: list[CandidateFacts], order: list[int]) -> None:
    assert [c.facts.number for c in rank(candidates, now=NOW)] == order


# (facts, reason, evidence)
REASONS = [
    (facts(1), "no community signal yet", "actionable 0.00 (fix): no positive signal recorded"),
    (
        facts(
            1,
            reactions=14,
            comments=1,
            labels=("high priority", "bug"),
            created_at=NOW - timedelta(days=120),
            score=0.85,
            signals=("maintainer_confirms", "traceback"),
        ),
        "label 'high priority'; 14 reactions; open 120 days; 1 comment",
        "actionable 0.85 (fix): maintainer_confirms, traceback",
    ),
    (
        facts(2, blocks=(7, 8, 9, 10), duplicates=(5,), mode="docs"),
        "blocks #7, #8, #9 and 1 more; 1 duplicate (#5)",
        "actionable 0.00 (docs): no positive signal recorded",
    ),
]


@pytest.mark.parametrize("candidate, reason, evidence", REASONS)
def test_reason_and_evidence(candidate: CandidateFacts, reason: str, evidence: str) -> None:
    [ranked] = rank([candidate], now=NOW)
    assert ranked.reason == reason
    assert ranked.evidence == evidence


def test_limit_and_impact_bounds() -> None:
    ranked = rank([facts(n, reactions=n) for n in range(20)], now=NOW, limit=5)
    assert [c.facts.number for c in ranked] == [19, 18, 17, 16, 15]
    loudest = rank(
        [
            facts(
                1,
                reactions=10**6,
                comments=10**6,
                labels=("P0",),
                blocks=tuple(range(99)),
                duplicates=tuple(range(99)),
                created_at=NOW - timedelta(days=9999),
            )
        ],
        now=NOW,
    )[0]
    assert loudest.impact <= 2.7


@pytest.fixture
def small_db(tmp_path: Path) -> Path:
    db = tmp_path / "bot.sqlite3"
    seed_small(db)
    return db


def test_store_keeps_only_open_actionable_undispatched_issues_without_open_pr(
    small_db: Path,
) -> None:
    queries = DashboardQueries(small_db)
    try:
        found = {(f.repo, f.number): f for f in queries.candidate_facts()}
        only_public = {f.number for f in queries.candidate_facts(PUBLIC)}
    finally:
        queries.close()
    # 4 needs hardware, 8 was dispatched, 9 has an open PR (10, branch fix/issue-9).
    assert set(found) == {(PUBLIC, 1), (PUBLIC, 2), (PUBLIC, 3), (PRIVATE, 1)}
    assert only_public == {1, 2, 3}
    assert found[(PUBLIC, 2)].blocks == (7,)
    assert found[(PUBLIC, 3)].duplicates == (5, 6)  # closed as duplicate; the engine's verdict
    assert found[(PUBLIC, 1)].signals == ("traceback", "code_pointer")
    assert found[(PUBLIC, 1)].reactions == 14 and "high priority" in found[(PUBLIC, 1)].labels


def test_cli_prints_ranked_candidates(small_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(small_db), "candidates", "--repo", PUBLIC]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(" 1. octo-org/widgets#1  impact ")
    assert "why: label 'high priority'; 14 reactions; 9 comments; open 120 days" in out
    assert "verdict: actionable 0.85 (fix): traceback, code_pointer" in out
    assert "octo-org/widgets#2" in out and "blocks #7" in out
    assert "octo-org/widgets#8" not in out and "octo-org/widgets#9" not in out


def test_cli_json_and_limit(small_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(small_db), "candidates", "--limit", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and (rows[0]["repo"], rows[0]["number"]) == (PUBLIC, 1)
    assert {"impact", "reason", "evidence", "factors", "duplicates", "blocks"} <= set(rows[0])


def test_cli_on_an_empty_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(tmp_path / "empty.sqlite3"), "candidates"]) == 0
    assert "no candidates" in capsys.readouterr().out
