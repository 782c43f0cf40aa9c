"""Writes whose outcome is unknown (applied, then 502 or a reset) are read back, never doubled."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests import test_dispatch_flow as flow
from tests.fakegithub import FakeGitHub
from tests.fakeslack import FakeSlack
from tests.service_fixtures import REPO, labeled, real_issue, seed
from tests.test_dispatch_flow import (
    bot_comment_bodies,
    by,
    deliver,
)

# The dispatch flow's service, with its fake Slack channel.
app, agents_channel = flow.app, flow.agents_channel

TRIAGE_MARKER = "<!-- agent-dispatch:triage"


async def test_a_comment_applied_then_answered_502_is_found_by_its_marker_not_posted_again(
    app: TestClient, fake_github: FakeGitHub
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    fake_github.apply_then_fail(2, path="/comments", method="POST")
    await deliver(app, fake_github, "issues", labeled(number))
    triage = [b for b in bot_comment_bodies(fake_github, number) if b.startswith(TRIAGE_MARKER)]
    assert len(triage) == 1


async def test_a_comment_whose_connection_dropped_is_not_doubled(
    app: TestClient, fake_github: FakeGitHub
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    fake_github.drop_next(1, path="/comments", method="POST")
    fake_github.apply_then_fail(1, path="/comments", method="POST", status=504)
    await deliver(app, fake_github, "issues", labeled(number))
    triage = [b for b in bot_comment_bodies(fake_github, number) if b.startswith(TRIAGE_MARKER)]
    assert len(triage) == 1


async def test_label_writes_applied_then_502_end_in_the_wanted_labels(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    raw = real_issue("peft.export.json", 436)
    number = seed(fake_github, raw | {"labels": [*raw["labels"], "dispatch"]})
    fake_github.set_permission(REPO, "someone", "read")
    fake_github.apply_then_fail(1, path="/labels", method="DELETE")
    fake_github.apply_then_fail(1, path="/comments", method="POST")
    # A reader's dispatch label is removed (once) and answered with one refusal comment.
    await deliver(app, fake_github, "issues", by(labeled(number, "dispatch"), "someone"))
    assert "dispatch" not in fake_github.labels_of(REPO, number)
    unlabeled = [e for e in fake_github.timeline_of(REPO, number) if e["event"] == "unlabeled"]
    assert len(unlabeled) == 1
    assert len(bot_comment_bodies(fake_github, number)) == 1, fake_github.comments_of(REPO, number)
    assert fake_slack.messages == []
