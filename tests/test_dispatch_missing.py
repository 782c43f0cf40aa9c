"""`/dispatch` naming an issue that does not exist (mistyped, deleted, transferred): skip it."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests import test_dispatch_flow as flow
from tests.fakegithub import FakeGitHub
from tests.fakeslack import FakeSlack
from tests.service_fixtures import REPO
from tests.test_dispatch_flow import (
    MAINTAINER,
    bot_comment_bodies,
    comment_payload,
    deliver,
    slack_messages,
)

# The dispatch flow's service, with its fake Slack channel.
app, agents_channel = flow.app, flow.agents_channel


@pytest.mark.parametrize("fate", ["missing", "deleted", "transferred"])
async def test_a_missing_issue_is_skipped_the_rest_dispatched_and_the_reply_says_so(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack, fate: str
) -> None:
    fake_github.add_issue(REPO, 2004, title="Real work", body="Do the thing.")
    fake_github.add_issue(REPO, 2005, title="More work", body="Do the other thing.")
    if fate == "deleted":
        fake_github.add_issue(REPO, 9999, title="Gone")
        fake_github.delete_issue(REPO, 9999)
    elif fate == "transferred":
        fake_github.add_issue(REPO, 9999, title="Moved away")
        fake_github.transfer_issue(REPO, 9999, "octo-org/elsewhere")
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(2004, "/dispatch force #2004 #9999 #2005", MAINTAINER, 9300),
    )
    [plan] = await slack_messages(fake_slack, 1)
    assert "#2004" in str(plan.blocks) and "#2005" in str(plan.blocks)
    assert "#9999" not in str(plan.blocks)
    reply = "\n".join(bot_comment_bodies(fake_github, 2004))
    assert "#9999" in reply and "skipped" in reply.lower()
    if fate == "transferred":
        assert fake_github.comments_of("octo-org/elsewhere", 1) == []


async def test_a_single_real_issue_left_is_dispatched_and_the_reply_names_the_skipped_one(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    fake_github.add_issue(REPO, 2004, title="Real work", body="Do the thing.")
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(2004, "/dispatch force #2004 #9999", MAINTAINER, 9301),
    )
    [notice] = await slack_messages(fake_slack, 1)
    assert "#2004" in str(notice.blocks)
    reply = "\n".join(bot_comment_bodies(fake_github, 2004))
    assert "#9999" in reply and "skipped" in reply.lower()


async def test_only_missing_issues_dispatch_nothing_and_say_why(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    fake_github.add_issue(REPO, 2004, title="Where the command was written")
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(2004, "/dispatch #9998 #9999", MAINTAINER, 9302),
    )
    assert await slack_messages(fake_slack, 1, timeout=0.5) == []
    reply = "\n".join(bot_comment_bodies(fake_github, 2004))
    assert "#9998" in reply and "#9999" in reply and "nothing" in reply.lower()
