"""Webhook deliveries change the mirror, and the very next query sees the change."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from gidgethub import sansio

from bot.config.loader import ConfigLoader
from bot.github.trees import TreeCache
from bot.mirror.handlers import act, parse
from bot.mirror.prs import find_existing_prs
from bot.mirror.related import find_related
from bot.mirror.webhooks import apply_event
from bot.store.mirror import AsyncMirrorStore, MirrorStore
from bot.store.thread import DatabaseThread
from bot.store.trees import TreeStore

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
REPO = "Codertocat/Hello-World"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.fixture
def store(tmp_path: Path) -> MirrorStore:
    return MirrorStore(tmp_path / "bot.sqlite3")


def test_opened_then_edited_then_closed_issue_is_current(store: MirrorStore) -> None:
    opened = example("issues.opened")
    apply_event(store, "issues", opened)
    assert [i.number for i in store.list_issues(REPO, state="open")] == [opened["issue"]["number"]]

    edited = copy.deepcopy(opened) | {"action": "edited"}
    edited["issue"]["body"] = "ValueError: cannot parse README spelling"
    apply_event(store, "issues", edited)
    issue = store.get_issue(REPO, 1)
    assert issue is not None and issue.body.startswith("ValueError")

    closed = copy.deepcopy(edited) | {"action": "closed"}
    closed["issue"]["state"] = "closed"
    apply_event(store, "issues", closed)
    assert store.list_issues(REPO, state="open") == []
    issue = store.get_issue(REPO, 1)
    assert issue is not None and issue.timeline[-1].type == "ClosedEvent"


def test_labels_follow_labeled_unlabeled_and_label_renames(store: MirrorStore) -> None:
    labeled = example("issues.labeled")
    apply_event(store, "issues", labeled)
    name = labeled["label"]["name"]
    assert [i.number for i in store.list_issues(REPO, label=name)] == [1]
    apply_event(
        store,
        "label",
        {
            "action": "edited",
            "repository": labeled["repository"],
            "label": {"name": "renamed"},
            "changes": {"name": {"from": name}},
        },
    )
    assert store.list_issues(REPO, label=name) == []
    assert [i.labels for i in store.list_issues(REPO, label="renamed")] == [["renamed"]]
    apply_event(
        store,
        "label",
        {"action": "deleted", "repository": labeled["repository"], "label": {"name": "renamed"}},
    )
    assert [i.number for i in store.list_issues(REPO, unlabeled=True)] == [1]


def test_comments_are_added_edited_and_deleted_and_searchable(store: MirrorStore) -> None:
    created = example("issue_comment.created")
    apply_event(store, "issue_comment", created)
    issue = store.get_issue(REPO, created["issue"]["number"])
    assert issue is not None and [c.id for c in issue.comments] == [created["comment"]["id"]]

    edited = copy.deepcopy(created) | {"action": "edited"}
    edited["comment"]["body"] = (
        "Traceback: ZeroDivisionError: division by zero in spelling_checker()"
    )
    apply_event(store, "issue_comment", edited)
    issue = store.get_issue(REPO, 1)
    assert (
        issue is not None
        and len(issue.comments) == 1
        and "ZeroDivisionError" in issue.comments[0].body
    )

    twin = copy.deepcopy(example("issues.opened"))
    twin["issue"] |= {
        "number": 77,
        "id": 77,
        "title": "Crash in checker",
        "body": "ZeroDivisionError: division by zero in spelling_checker()",
    }
    apply_event(store, "issues", twin)
    related = find_related(store, store.get_issue(REPO, 77))  # type: ignore[arg-type]
    assert related and related[0].number == 1 and "exc:ZeroDivisionError" in related[0].matched

    deleted = copy.deepcopy(edited) | {"action": "deleted"}
    apply_event(store, "issue_comment", deleted)
    issue = store.get_issue(REPO, 1)
    assert issue is not None and issue.comments == []


def test_pull_request_opened_with_closing_keyword_is_an_existing_pr(store: MirrorStore) -> None:
    apply_event(store, "issues", example("issues.opened"))
    pr = example("pull_request.opened")
    pr["pull_request"]["body"] = "Fixes #1 by correcting the spelling."
    apply_event(store, "pull_request", pr)
    issue = store.get_issue(REPO, 1)
    assert issue is not None
    assert [(p.number, p.state, p.found_by) for p in find_existing_prs(store, issue)] == [
        (2, "open", "closing-keyword")
    ]

    closed = example("pull_request.closed")
    closed["pull_request"]["body"] = "Fixes #1 by correcting the spelling."
    apply_event(store, "pull_request", closed)
    states = [(p.number, p.state) for p in find_existing_prs(store, issue)]
    assert states == [(2, "merged" if closed["pull_request"]["merged"] else "closed")]


def test_payloads_without_repository_or_issue_are_ignored(store: MirrorStore) -> None:
    apply_event(store, "issues", {"action": "opened"})
    apply_event(
        store,
        "issues",
        {"action": "opened", "repository": {"full_name": REPO}, "issue": {"title": "x"}},
    )
    apply_event(store, "issue_comment", {"action": "created", "repository": {"full_name": REPO}})
    assert store.repos() == []


async def test_the_mirror_handler_parses_then_writes_to_the_mirror(store: MirrorStore) -> None:
    payload = example("issues.opened")
    intent = parse(sansio.Event(payload, event="issues", delivery_id="1"), None)
    assert intent is not None
    database = DatabaseThread()
    mirror = AsyncMirrorStore(store, database)
    await act(intent, mirror, ConfigLoader(), TreeCache(TreeStore(":memory:")))
    database.close()
    assert store.get_issue(REPO, 1) is not None
