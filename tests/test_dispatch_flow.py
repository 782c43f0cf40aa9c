"""Dispatch end to end: signed deliveries, the fake GitHub, the fake Slack, the outbox."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.cli.main import main
from bot.dispatch.handlers import WINDOW_EVENT
from bot.notify.outbox import Outbox
from bot.service import create_app
from bot.web.app import SERVICES
from tests.conftest import FAST_RETRIES
from tests.fakegithub import FakeGitHub
from tests.fakeslack import FakeSlack
from tests.service_fixtures import (
    REPO,
    delivery_rows,
    example,
    labeled,
    real_issue,
    seed,
    send,
    settled,
)

MAINTAINER, TRIAGER = "maint", "helper"
NO_WINDOW = "dispatch:\n  batch_window_seconds: 0\n"


@pytest.fixture
def agents_channel(fake_slack: FakeSlack) -> str:
    return fake_slack.add_channel("agents")


@pytest.fixture
async def app(
    aiohttp_client: Any,
    fake_github: FakeGitHub,
    fake_slack: FakeSlack,
    agents_channel: str,
    tmp_path: Path,
) -> AsyncIterator[TestClient]:
    settings = fake_github.settings(
        db=tmp_path / "bot.sqlite3",
        workers=3,
        debounce_seconds=0.0,
        retry_base_seconds=0.01,
        slack_token=fake_slack.token,
        slack_api_url=fake_slack.api_url,
        slack_channel="agents",
    )
    fake_github.set_permission(REPO, MAINTAINER, "maintain")
    fake_github.set_permission(REPO, TRIAGER, "triage")
    fake_github.set_file(REPO, ".github/agent-dispatch.yml", NO_WINDOW)
    client: TestClient = await aiohttp_client(
        await create_app(settings, github_policy=FAST_RETRIES)
    )
    yield client


def by(payload: dict[str, Any], login: str, kind: str = "User") -> dict[str, Any]:
    payload["sender"]["login"] = login
    payload["sender"]["type"] = kind
    return payload


def comment_payload(number: int, body: str, login: str, comment_id: int) -> dict[str, Any]:
    payload = copy.deepcopy(example("issue_comment.created"))
    payload["repository"]["full_name"] = REPO
    payload["issue"]["number"] = number
    payload["issue"].pop("pull_request", None)
    payload["comment"].update({"id": comment_id, "body": body})
    payload["comment"]["user"]["login"] = login
    payload["installation"] = {"id": 1, "node_id": "x"}
    return by(payload, login)


def pr_payload(action: str, pr: int, body: str, *, merged: bool = False) -> dict[str, Any]:
    payload = copy.deepcopy(example("pull_request.opened"))
    payload["action"] = action
    payload["repository"]["full_name"] = REPO
    payload["installation"] = {"id": 1, "node_id": "x"}
    payload["pull_request"].update(
        {
            "number": pr,
            "title": f"Fix the crash ({pr})",
            "body": body,
            "merged": merged,
            "state": "closed" if action == "closed" else "open",
        }
    )
    payload["number"] = pr
    return by(payload, "agent-bot", "Bot")


async def deliver(
    app: TestClient, fake: FakeGitHub, event: str, payload: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    status, answer, delivery = await send(app, event, payload, secret=fake.webhook_secret, **kw)
    assert status in (200, 202), answer
    rows = await settled(app.app[SERVICES].settings.db, [delivery], timeout=20)
    assert rows[delivery]["status"] == "done", rows[delivery]["last_error"]
    return rows[delivery]


async def slack_messages(fake: FakeSlack, count: int, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(fake.messages) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # and nothing more arrives
    return fake.messages


def bot_comment_bodies(fake: FakeGitHub, number: int) -> list[str]:
    return [c["body"] for c in fake.comments_of(REPO, number) if c["user"]["type"] == "Bot"]


async def test_maintainer_dispatch_posts_one_slack_notice_with_a_working_launch_command(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    messages = await slack_messages(fake_slack, 1)
    assert len(messages) == 1
    text = str(messages[0].blocks)
    assert f"#{number}" in text and "actionable" in text and "claude" in text
    [launch] = [
        b["text"]["text"]
        for b in messages[0].blocks
        if "curl -fsSL" in b.get("text", {}).get("text", "")
    ]
    url = launch.split("curl -fsSL '", 1)[1].split("'", 1)[0].replace("&amp;", "&")
    path = url.split("://", 1)[1].split("/", 1)[1]
    prompt = await app.get("/" + path)
    assert prompt.status == 200 and "## 9. Launch command" in await prompt.text()
    comments = bot_comment_bodies(fake_github, number)
    assert len(comments) == 1 and "Dispatched to an agent" in comments[0]


async def test_triage_level_and_bot_senders_are_refused_politely_once(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    for sender, kind in ((TRIAGER, "User"), (TRIAGER, "User"), ("renovate[bot]", "Bot")):
        await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), sender, kind))
    assert await slack_messages(fake_slack, 1, timeout=0.5) == []
    comments = bot_comment_bodies(fake_github, number)
    assert len(comments) == 1 and "reserved for people with the `maintain` role" in comments[0]
    assert len(fake_github.requests_to("DELETE", "/labels/dispatch")) == 3


async def test_non_actionable_issue_is_refused_until_a_maintainer_forces_it(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 2041))  # needs Apple MPS hardware
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    assert await slack_messages(fake_slack, 1, timeout=0.5) == []
    refusal = [b for b in bot_comment_bodies(fake_github, number) if "Not dispatched" in b]
    assert len(refusal) == 1 and "needs-hardware" in refusal[0] and "/dispatch force" in refusal[0]

    await deliver(
        app, fake_github, "issue_comment", comment_payload(number, "/dispatch force", TRIAGER, 9001)
    )
    assert await slack_messages(fake_slack, 1, timeout=0.5) == []  # a triager cannot force
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(number, "/dispatch force", MAINTAINER, 9002),
    )
    messages = await slack_messages(fake_slack, 1)
    assert len(messages) == 1 and "needs-hardware" in str(messages[0].blocks)


async def test_the_same_label_delivery_three_times_gives_one_message(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    payload = by(labeled(number, "dispatch"), MAINTAINER)
    await deliver(app, fake_github, "issues", payload, delivery="label-once")
    status, answer, _ = await send(
        app, "issues", payload, secret=fake_github.webhook_secret, delivery="label-once"
    )
    assert (status, answer["status"]) == (200, "duplicate")
    db = app.app[SERVICES].settings.db
    assert (
        main(["--db", str(db), "deliveries", "replay", "label-once"]) == 0
    )  # an operator replays it
    await settled(db, ["label-once"], timeout=20)
    await asyncio.sleep(1.2)  # the worker polls the inbox at least every second
    await settled(db, ["label-once"], timeout=20)
    assert len(await slack_messages(fake_slack, 2, timeout=1.0)) == 1


async def test_slack_rate_limit_then_success_delivers_once(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    fake_slack.rate_limit_next(2, retry_after=1)
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    messages = await slack_messages(fake_slack, 1, timeout=15)
    assert len(messages) == 1
    assert [c.status for c in fake_slack.calls if c.method == "chat.postMessage"][:3] == [
        429,
        429,
        200,
    ]


async def test_slack_down_for_a_while_then_delivered_exactly_once(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    fake_slack.set_down(True)
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    await asyncio.sleep(0.3)
    outbox = app.app[SERVICES].outbox
    assert [m.status for m in await outbox.call(Outbox.messages)] in (
        ["pending"],
        ["failed"],
        ["sending"],
    )
    fake_slack.set_down(False)
    app.app[SERVICES].sender.wake()
    messages = await slack_messages(fake_slack, 1, timeout=15)
    assert len(messages) == 1
    assert [m.status for m in await outbox.call(Outbox.messages)] == ["sent"]


async def test_pr_follow_up_lands_in_the_thread_and_updates_the_triage_comment(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    [notice] = await slack_messages(fake_slack, 1)
    fake_github.set_permission(REPO, "Codertocat", "write")  # the PR's author
    await deliver(app, fake_github, "pull_request", pr_payload("opened", 501, f"Fixes #{number}"))
    await deliver(
        app, fake_github, "pull_request", pr_payload("closed", 501, f"Fixes #{number}", merged=True)
    )
    messages = await slack_messages(fake_slack, 3)
    replies = fake_slack.replies(notice)
    assert len(messages) == 3 and len(replies) == 2
    assert "#501" in replies[0].text and "merged" in replies[1].text.lower()
    [comment] = bot_comment_bodies(fake_github, number)
    assert "PR #501 merged" in comment


async def test_batch_with_a_chain_and_a_cap_releases_work_when_a_pr_merges(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    fake_github.set_file(REPO, ".github/agent-dispatch.yml", NO_WINDOW + "  max_in_flight: 1\n")
    for n, body in ((11, "First step."), (12, "Depends on #11."), (13, "Blocked by #12.")):
        fake_github.add_issue(REPO, n, title=f"Step {n}", body=body)
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(11, "/dispatch force #11 #12 #13", MAINTAINER, 9100),
    )
    [plan] = await slack_messages(fake_slack, 1)
    assert "1 dispatched" in str(plan.blocks) and "2 queued" in str(plan.blocks)
    runs = app.app[SERVICES].runs
    [run] = await runs.runs_for_issue(REPO, 11)
    assert (run.numbers("dispatched"), run.numbers("queued")) == ([11], [12, 13])

    await deliver(
        app, fake_github, "pull_request", pr_payload("closed", 600, "Fixes #11", merged=True)
    )
    await slack_messages(fake_slack, 4)
    [run] = await runs.runs_for_issue(REPO, 11)
    assert (run.numbers("done"), run.numbers("dispatched"), run.numbers("queued")) == (
        [11],
        [12],
        [13],
    )
    thread = fake_slack.replies(plan)
    assert any("#12" in m.text for m in thread), [m.text for m in thread]


async def test_an_outsiders_pr_moves_no_run_until_it_is_merged(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    fake_github.set_file(REPO, ".github/agent-dispatch.yml", NO_WINDOW + "  max_in_flight: 1\n")
    for n in (11, 12, 13):
        fake_github.add_issue(REPO, n, title=f"Step {n}", body="Independent.")
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(11, "/dispatch force #11 #12 #13", MAINTAINER, 9150),
    )
    [plan] = await slack_messages(fake_slack, 1)
    runs = app.app[SERVICES].runs
    for action in ("opened", "closed", "reopened", "closed"):
        outsider_pr = pr_payload(action, 700, "Fixes #11")
        outsider_pr["pull_request"]["user"]["login"] = "mallory"  # read access only
        await deliver(app, fake_github, "pull_request", by(outsider_pr, "mallory"))
    [run] = await runs.runs_for_issue(REPO, 11)
    assert (run.numbers("dispatched"), run.numbers("queued")) == ([11], [12, 13])
    assert fake_slack.replies(plan) == []
    merged = pr_payload("closed", 701, "Fixes #11", merged=True)
    merged["pull_request"]["user"]["login"] = "mallory"
    await deliver(app, fake_github, "pull_request", merged)
    [run] = await runs.runs_for_issue(REPO, 11)
    assert (run.numbers("done"), run.numbers("dispatched")) == ([11], [12])


async def test_a_batch_with_a_cycle_is_refused_with_a_comment_naming_it(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    fake_github.add_issue(REPO, 21, title="A", body="Depends on #22.")
    fake_github.add_issue(REPO, 22, title="B", body="Depends on #21.")
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(21, "/dispatch force #21 #22", MAINTAINER, 9200),
    )
    assert await slack_messages(fake_slack, 1, timeout=0.5) == []
    [refusal] = [b for b in bot_comment_bodies(fake_github, 21) if "cannot be planned" in b]
    assert "#21 -> #22 -> #21" in refusal or "#22 -> #21 -> #22" in refusal


async def test_four_labels_in_one_window_leave_the_workers_free_for_other_triage(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    """The window is a delayed inbox row: while it is open, another issue is triaged."""
    fake_github.set_file(
        REPO, ".github/agent-dispatch.yml", "dispatch:\n  batch_window_seconds: 6\n"
    )
    numbers = [seed(fake_github, real_issue("peft.export.json", n)) for n in (340, 436, 1095, 1113)]
    other = seed(fake_github, real_issue("peft.export.json", 1264))
    db = app.app[SERVICES].settings.db
    for number in numbers:  # each label delivery is done at once: nobody waits in a worker
        await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    await deliver(app, fake_github, "issues", labeled(other))
    assert any(c["user"]["type"] == "Bot" for c in fake_github.comments_of(REPO, other))
    windows = [r for r in delivery_rows(db) if r["event"] == WINDOW_EVENT]
    assert len(windows) == 4 and all(r["status"] == "pending" for r in windows)
    assert fake_slack.messages == []  # the window is still open

    rows = await settled(db, [r["id"] for r in windows], timeout=20)
    assert all(r["status"] == "done" for r in rows.values())
    [plan] = await slack_messages(fake_slack, 1)
    [run] = await app.app[SERVICES].runs.runs_for_issue(REPO, numbers[0])
    assert sorted(i.number for i in run.items) == numbers
    assert run.source == "label" and run.requested_by == MAINTAINER
    assert all(f"#{n}" in str(plan.blocks) for n in numbers)


async def test_a_dispatch_re_renders_the_comment_from_the_stored_triage_without_triaging(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    await deliver(app, fake_github, "issues", labeled(number))  # triaged once, here
    timeline = f"/issues/{number}/timeline"
    assert len(fake_github.requests_to("GET", timeline)) == 1
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    await slack_messages(fake_slack, 1)
    assert len(fake_github.requests_to("GET", timeline)) == 1  # no second triage
    [comment] = [b for b in bot_comment_bodies(fake_github, number) if "triage" in b[:40]]
    assert "Dispatched to an agent" in comment


async def test_dispatching_an_untriaged_issue_triages_it_once(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), MAINTAINER))
    await slack_messages(fake_slack, 1)
    assert len(fake_github.requests_to("GET", f"/issues/{number}/timeline")) == 1
    [comment] = [b for b in bot_comment_bodies(fake_github, number) if "triage" in b[:40]]
    assert "Dispatched to an agent" in comment
