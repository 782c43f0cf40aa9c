"""What outsiders and replayed deliveries cannot make a dispatch do (issue 14, items 10, 11)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.dispatch.job import DISPATCH_MARKER_PREFIX
from tests import test_dispatch_flow as flow
from tests.fakegithub import FakeGitHub
from tests.fakeslack import FakeSlack
from tests.service_fixtures import REPO, labeled, real_issue, seed
from tests.test_dispatch_flow import (
    MAINTAINER,
    bot_comment_bodies,
    by,
    comment_payload,
    deliver,
    slack_messages,
)

# The dispatch flow's service, with its fake Slack channel.
app, agents_channel = flow.app, flow.agents_channel
ALLOWED = "trusted-contributor"


async def test_a_replayed_label_delivery_with_a_new_id_is_not_announced_again(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    payload = by(labeled(number, "dispatch"), MAINTAINER)
    await deliver(app, fake_github, "issues", payload)
    assert len(await slack_messages(fake_slack, 1)) == 1
    for replay in ("replayed-1", "replayed-2"):  # same signed body, new delivery ids
        await deliver(app, fake_github, "issues", payload, delivery=replay)
    assert len(await slack_messages(fake_slack, 2, timeout=1)) == 1


async def test_an_outsiders_dispatch_mentions_nobody_and_is_answered_once(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    fake_github.set_file(
        REPO,
        ".github/agent-dispatch.yml",
        flow.NO_WINDOW + f"  allowed_users: [{ALLOWED}]\n",
    )
    number = seed(fake_github, real_issue("peft.export.json", 436))
    for i, outsider in enumerate(("mallory", "eve", "mallory")):
        await deliver(
            app,
            fake_github,
            "issue_comment",
            comment_payload(number, "/dispatch", outsider, 9400 + i),
        )
    [answer] = bot_comment_bodies(fake_github, number)
    assert "@" not in answer and ALLOWED not in answer and "nothing was sent" in answer
    edits = [r for r in fake_github.requests if r.method == "PATCH" and "/comments/" in r.path]
    assert edits == []  # asked again: no new answer, no edit
    assert await slack_messages(fake_slack, 1, timeout=0.5) == []


async def test_an_outsider_cannot_overwrite_a_maintainers_dispatch_news(
    app: TestClient, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    for n in (31, 32):
        fake_github.add_issue(REPO, n, title=f"Step {n}", body="Independent.")
    await deliver(
        app,
        fake_github,
        "issue_comment",
        comment_payload(31, "/dispatch force #31 #32", MAINTAINER, 9500),
    )
    [news] = [b for b in bot_comment_bodies(fake_github, 31) if "Batch planned" in b]
    await deliver(
        app, fake_github, "issue_comment", comment_payload(31, "/dispatch", "mallory", 9501)
    )
    ours = [b for b in bot_comment_bodies(fake_github, 31) if b.startswith(DISPATCH_MARKER_PREFIX)]
    assert ours == [news]
