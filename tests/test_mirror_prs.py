"""Existing-PR detection: each source, the state it reports, and what it must not match."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.mirror.prs import branch_issue_numbers, closing_targets, find_existing_prs
from bot.models import Issue, TimelineEvent
from bot.store.mirror import MirrorStore
from tests.shared_data import DATA, needs_data

REPO = "octo/widgets"


@pytest.fixture
def store(tmp_path: Path) -> MirrorStore:
    s = MirrorStore(tmp_path / "bot.sqlite3")
    s.upsert_issue(Issue(repo=REPO, number=12, title="Crash on load"))
    return s


def pr(
    number: int,
    *,
    title: str = "Improve things",
    body: str = "",
    head: str = "feature",
    state: str = "open",
    merged: bool = False,
) -> Issue:
    return Issue(
        repo=REPO,
        number=number,
        title=title,
        body=body,
        is_pull_request=True,
        head_ref=head,
        state="closed" if merged else state,
        merged=merged,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pull, found_by, state",
    [
        (pr(20, body="This fixes #12."), "closing-keyword", "open"),
        (pr(21, body="Closes octo/widgets#12", merged=True), "closing-keyword", "merged"),
        (
            pr(22, body="resolves https://github.com/octo/widgets/issues/12", state="closed"),
            "closing-keyword",
            "closed",
        ),
        (pr(23, title="Crash on load (#12)"), "title", "open"),
        (pr(24, title="Handle issue 12 properly"), "title", "open"),
        (pr(25, head="fix/issue-12"), "branch", "open"),
        (pr(26, head="gh-12-crash"), "branch", "open"),
        (pr(27, head="12-crash-on-load"), "branch", "open"),
    ],
)
def test_each_source_in_pr_text(store: MirrorStore, pull: Issue, found_by: str, state: str) -> None:
    store.upsert_issue(pull)
    issue = store.get_issue(REPO, 12)
    assert issue is not None
    found = find_existing_prs(store, issue)
    assert [(p.number, p.found_by, p.state) for p in found] == [(pull.number, found_by, state)]


@pytest.mark.parametrize(
    "pull",
    [
        pr(30, body="See #120 and fixes #1"),
        pr(31, body="fixes other/repo#12"),
        pr(32, title="Bump to 12.0"),
        pr(33, head="release-12.1"),
        pr(34, head="feature/v12"),
    ],
)
def test_near_misses_are_not_existing_prs(store: MirrorStore, pull: Issue) -> None:
    store.upsert_issue(pull)
    assert find_existing_prs(store, store.get_issue(REPO, 12)) == []  # type: ignore[arg-type]


def test_timeline_cross_reference_with_state_refreshed_from_mirrored_pr(store: MirrorStore) -> None:
    issue = Issue(
        repo=REPO,
        number=12,
        title="Crash on load",
        timeline=[
            TimelineEvent(
                type="CrossReferencedEvent",
                source_type="PullRequest",
                source_number=40,
                source_state="OPEN",
                source_url=f"https://github.com/{REPO}/pull/40",
            ),
            TimelineEvent(
                type="CrossReferencedEvent",
                source_type="PullRequest",
                source_number=41,
                source_state=None,
                source_url=f"https://github.com/{REPO}/pull/41",
            ),
            TimelineEvent(
                type="CrossReferencedEvent",
                source_type="PullRequest",
                source_number=42,
                source_body="Fixes #12",
                source_state="MERGED",
                source_repo=REPO,
            ),
            TimelineEvent(
                type="CrossReferencedEvent",
                source_type="PullRequest",
                source_number=43,
                source_url="https://github.com/other/lib/pull/43",
                source_state="MERGED",
            ),
            TimelineEvent(type="CrossReferencedEvent", source_type="Issue", source_number=44),
        ],
    )
    store.upsert_issue(issue)
    store.upsert_issue(pr(40, state="closed"))  # closed since the cross-reference was recorded
    found = {p.number: (p.state, p.found_by, p.closes) for p in find_existing_prs(store, issue)}
    assert found == {
        40: ("closed", "timeline", False),
        41: ("unknown", "timeline", False),  # no state reported: never shown as open
        42: ("merged", "closing-keyword", True),
    }


@needs_data
def test_real_xref_exports_find_the_linked_prs(tmp_path: Path) -> None:
    import json

    from bot.mirror.importer import import_file

    store = MirrorStore(tmp_path / "real.sqlite3")
    data = DATA
    for name in ("peft", "transformers", "vllm"):
        import_file(store, data / f"{name}.xref.export.json")
    for truth in json.loads((data / "truth.json").read_text()):
        issue = store.get_issue(truth["repo"], truth["number"])
        assert issue is not None
        found = {p.number for p in find_existing_prs(store, issue)}
        assert set(truth["existing_pr"]) <= found


def test_helpers() -> None:
    assert closing_targets(
        "Fixed #3, closes a/b#4 and resolves https://github.com/c/d/issues/5", "x/y"
    ) == [("x/y", 3), ("a/b", 4), ("c/d", 5)]
    assert branch_issue_numbers("bugfix_77") == [77]
    assert branch_issue_numbers("feature/new-ui") == []
