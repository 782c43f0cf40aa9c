"""A table per handler's pure `parse`: which deliveries ask for what (no I/O at all)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from gidgethub import sansio

from bot.config.repo import RepoConfig
from bot.delivery import pull_requests
from bot.dispatch import handlers as dispatch
from bot.dispatch.commands import DispatchCommand
from bot.dispatch.job import Requester
from bot.mirror import handlers as mirror
from bot.triage import handlers as triage
from bot.web.app import SERVICES
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import REPO, labeled, real_issue, seed, send, settled

CONFIG = RepoConfig()
ON_OPEN = RepoConfig.model_validate({"labels": {"triage_on_open": True}})
USER = {"login": "maint", "type": "User"}
BOT = {"login": "some-app[bot]", "type": "Bot"}


def issue_event(
    event: str,
    action: str,
    *,
    number: int = 7,
    sender: dict[str, str] = USER,
    label: str | None = None,
    body: str | None = None,
    pull_request: bool = False,
) -> sansio.Event:
    data: dict[str, Any] = {
        "action": action,
        "repository": {"full_name": REPO},
        "issue": {"number": number, **({"pull_request": {"url": "u"}} if pull_request else {})},
        "sender": sender,
        "installation": {"id": 1},
    }
    if label is not None:
        data["label"] = {"name": label}
    if body is not None:
        data["comment"] = {"id": 99, "body": body, "user": {"login": sender["login"]}}
    return sansio.Event(data, event=event, delivery_id="d")


def pr_event(
    action: str,
    body: str,
    *,
    merged: bool = False,
    sender: dict[str, str] = USER,
    old_body: str | None = None,
) -> sansio.Event:
    data: dict[str, Any] = {
        "action": action,
        "repository": {"full_name": REPO},
        "pull_request": {
            "number": 50,
            "title": "A fix",
            "body": body,
            "state": "closed" if action == "closed" else "open",
            "merged": merged,
            "head": {"ref": "some-branch"},
            "user": {"login": "author"},
        },
        "sender": sender,
    }
    if old_body is not None:
        data["changes"] = {"body": {"from": old_body}}
    return sansio.Event(data, event="pull_request", delivery_id="d")


T = triage.Triage
TRIAGE_CASES = [
    # (event, config, expected intent)
    (
        issue_event("issues", "labeled", label="agent-ready"),
        CONFIG,
        T(REPO, 7, "labelled agent-ready"),
    ),
    (issue_event("issues", "labeled", label="bug"), CONFIG, None),
    (issue_event("issues", "labeled", label="agent-ready", sender=BOT), CONFIG, None),
    (issue_event("issues", "labeled", label="agent-ready", pull_request=True), CONFIG, None),
    (issue_event("issues", "opened"), CONFIG, None),
    (issue_event("issues", "opened"), ON_OPEN, T(REPO, 7, "new issue (triage_on_open)")),
    (issue_event("issues", "edited"), CONFIG, T(REPO, 7, "issues.edited", only_if_triaged=True)),
    (issue_event("issues", "closed"), CONFIG, None),
    (
        issue_event("issue_comment", "created", body="hi"),
        CONFIG,
        T(REPO, 7, "issue_comment.created", only_if_triaged=True),
    ),
    (issue_event("issue_comment", "created", body="hi", sender=BOT), CONFIG, None),
    (issue_event("issue_comment", "deleted", body="hi", pull_request=True), CONFIG, None),
    (pr_event("opened", "Fixes #7"), CONFIG, None),  # the pull-request handler's
]


@pytest.mark.parametrize(("event", "config", "expected"), TRIAGE_CASES)
def test_triage_parse(event: sansio.Event, config: RepoConfig, expected: object) -> None:
    assert triage.parse(event, config) == expected


MAINT = Requester("maint")
DISPATCH_CASES = [
    (
        issue_event("issues", "labeled", label="dispatch"),
        dispatch.LabelApplied(REPO, 7, "dispatch", MAINT),
    ),
    (
        issue_event("issues", "labeled", label="dispatch", sender=BOT),
        dispatch.LabelApplied(REPO, 7, "dispatch", Requester("some-app[bot]", is_bot=True)),
    ),
    (issue_event("issues", "labeled", label="dispatch", pull_request=True), None),
    (issue_event("issues", "labeled", label="agent-ready"), None),
    (
        issue_event("issue_comment", "created", body="/dispatch #3 #4 force"),
        dispatch.CommandGiven(REPO, 7, DispatchCommand((3, 4), True), MAINT, 99),
    ),
    (issue_event("issue_comment", "created", body="/dispatch", sender=BOT), None),
    (issue_event("issue_comment", "edited", body="/dispatch"), None),
    (issue_event("issue_comment", "created", body="> /dispatch"), None),
    (issue_event("issue_comment", "created", body="thanks"), None),
]


@pytest.mark.parametrize(("event", "expected"), DISPATCH_CASES)
def test_dispatch_parse(event: sansio.Event, expected: object) -> None:
    assert dispatch.parse(event, CONFIG) == expected


def retriage(*numbers: int, action: str, followed_up: bool) -> tuple[triage.Triage, ...]:
    return tuple(T(REPO, n, f"pull request #50 {action}", True, followed_up) for n in numbers)


def moved(action: str, *numbers: int, sender: dict[str, str] = USER) -> dispatch.PullRequestMoved:
    event = pr_event("opened", "")
    return dispatch.PullRequestMoved(
        REPO,
        {},
        action,
        numbers,
        dispatch.requester({**event.data, "sender": sender}),
    )


PR_CASES = [
    # (event, expected retriage, expected dispatch follow-up (pull left out))
    (
        pr_event("opened", "Fixes #7, see #8"),
        retriage(7, 8, action="opened", followed_up=True),
        moved("opened", 7, 8),
    ),
    (
        pr_event("closed", "Fixes #7", merged=True),
        retriage(7, action="closed", followed_up=True),
        moved("merged", 7),
    ),
    (
        pr_event("closed", "Fixes #7"),
        retriage(7, action="closed", followed_up=True),
        moved("closed", 7),
    ),
    (pr_event("opened", "Fixes #7", sender=BOT), (), moved("opened", 7, sender=BOT)),
    (
        pr_event("edited", "Fixes #8", old_body="Fixes #7"),
        retriage(7, 8, action="edited", followed_up=False),
        None,
    ),
    (pr_event("opened", "Fixes other/repo#7"), None, None),
    (pr_event("opened", "nothing named"), None, None),
    (pr_event("synchronize", "Fixes #7"), None, None),
]


@pytest.mark.parametrize(("event", "expected_retriage", "expected_moved"), PR_CASES)
def test_pull_request_parse_emits_triage_and_dispatch_intents(
    event: sansio.Event, expected_retriage: object, expected_moved: object
) -> None:
    news = pull_requests.parse(event, CONFIG)
    if expected_retriage is None:
        assert news is None
        return
    assert news is not None
    assert news.retriage == expected_retriage
    got = news.moved
    if got is not None:
        assert got.pull == event.data["pull_request"]
        got = dispatch.PullRequestMoved(got.repo, {}, got.action, got.targets, got.sender)
    assert got == expected_moved


def push(ref: str, *files: str, repo: str = REPO, commits: int = 1) -> sansio.Event:
    data = {
        "ref": ref,
        "repository": {"full_name": repo, "default_branch": "main"},
        "commits": [{"added": [], "modified": list(files), "removed": []}] * commits,
        "head_commit": {"tree_id": "abc"},
    }
    return sansio.Event(data, event="push", delivery_id="d")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (push("refs/heads/main", ".github/agent-dispatch.yml"), (REPO, True)),
        (push("refs/heads/main", "README.md"), (REPO, False)),
        (push("refs/heads/main", "README.md", commits=20), (REPO, True)),  # list cut short
        (push("refs/heads/feature", ".github/agent-dispatch.yml"), None),
        (push("refs/tags/v1", ".github/agent-dispatch.yml"), None),
    ],
)
def test_mirror_parse_of_a_push(event: sansio.Event, expected: tuple[str, bool] | None) -> None:
    intent = mirror.parse(event, None)
    if expected is None:
        assert intent is None
        return
    assert isinstance(intent, mirror.DefaultBranchPush)
    assert (intent.repo, intent.touches_config) == expected


def test_mirror_parse_of_item_events() -> None:
    event = issue_event("issues", "edited")
    assert mirror.parse(event, None) == mirror.MirrorUpdate("issues", event.data)
    assert mirror.parse(sansio.Event({}, event="ping", delivery_id="d"), None) is None


async def test_a_push_of_the_config_file_applies_at_the_next_delivery(
    app_client: TestClient, fake_github: FakeGitHub
) -> None:
    """The config cache (5 minutes) is dropped by a push that changes the file."""
    number = seed(fake_github, real_issue("peft.export.json", 436))
    db = app_client.app[SERVICES].settings.db
    secret = fake_github.webhook_secret
    _, _, first = await send(app_client, "issues", labeled(number), secret=secret)
    await settled(db, [first])
    fake_github.set_file(REPO, ".github/agent-dispatch.yml", "labels:\n  trigger: go-agent\n")
    _, _, stale = await send(app_client, "issues", labeled(number, "go-agent"), secret=secret)
    await settled(db, [stale])
    assert len(fake_github.requests_to("POST", f"/issues/{number}/comments")) == 1
    payload = copy.deepcopy(push("refs/heads/main", ".github/agent-dispatch.yml").data)
    payload["installation"] = {"id": 1}
    _, _, pushed = await send(app_client, "push", payload, secret=secret)
    fake_github.add_comment(REPO, number, "It also fails with `KeyError: 'lora_A'`", user="x")
    _, _, fresh = await send(app_client, "issues", labeled(number, "go-agent"), secret=secret)
    rows = await settled(db, [pushed, fresh])
    assert rows[pushed]["status"] == "done" and rows[fresh]["status"] == "done"
    assert len(fake_github.requests_to("PATCH", "/comments/")) == 1  # triaged again
