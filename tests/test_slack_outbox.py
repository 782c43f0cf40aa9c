"""The Slack outbox against the stateful fake Slack: retries, outages, idempotency, threads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.config.repo import RepoConfig
from bot.config.settings import Settings
from bot.dispatch.planner import BatchIssue, plan_batch
from bot.notify.outbox import (
    AsyncOutbox,
    DeliveryReport,
    Outbox,
    OutboxSender,
    SlackPoster,
    UnknownParent,
    deliver_due,
)
from bot.notify.slack import (
    BatchEntry,
    DispatchNotice,
    SlackRetryPolicy,
    batch_plan_message,
    choose_channel,
    client_from_settings,
    dispatch_message,
    make_client,
    pr_reply_message,
)
from bot.store.actions import ActionLog, AsyncActionLog
from bot.store.thread import DatabaseThread
from bot.triage.render import PromptTemplateError, Renderer
from tests.fakeslack import TOKEN, FakeSlack

REPO = "octo/widgets"
FAST = SlackRetryPolicy(
    rate_limit_retries=2,
    max_inline_retry_after=2,
    server_error_retries=1,
    server_error_backoff=0.01,
    connection_retries=1,
    timeout_seconds=5,
)


@pytest.fixture
def poster(fake_slack: FakeSlack) -> SlackPoster:
    return SlackPoster(make_client(TOKEN, base_url=fake_slack.api_url, policy=FAST))


# The service runs the outbox on its database thread; these tests inspect it directly too.
DATABASE = DatabaseThread("test-outbox")


def sending(box: Outbox) -> AsyncOutbox:
    return AsyncOutbox(box, DATABASE)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


@pytest.fixture
def outbox(db: Path) -> Iterator[Outbox]:
    box = Outbox(db, retry_base_seconds=0.01)
    yield box
    box.close()


def notice(number: int = 12, title: str = "Crash when loading <model> & co") -> DispatchNotice:
    url = f"https://artifacts.example/{REPO}/{number}.md?exp=1&sig=abc"
    return DispatchNotice(
        repo=REPO,
        number=number,
        title=title,
        url=f"https://github.com/{REPO}/issues/{number}",
        verdict="actionable",
        summary="Loading a checkpoint\nraises KeyError: 'lm_head'.",
        artifact_url=url,
        launch_command=Renderer().launch_command(RepoConfig(), url=url, number=number, repo=REPO),
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def post_calls(fake: FakeSlack) -> list[tuple[int, str | None]]:
    return [(c.status, c.error) for c in fake.calls if c.method == "chat.postMessage"]


# -- retries -------------------------------------------------------------------------------


async def test_rate_limited_then_sent(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    fake_slack.rate_limit_next(1, retry_after=0)
    outbox.enqueue_dispatch(notice(), key="dispatch:12", channel="#dispatch")
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    assert post_calls(fake_slack) == [(429, "ratelimited"), (200, None)]
    [message] = fake_slack.messages
    row = outbox.get_by_key("dispatch:12")
    assert row is not None and row.status == "sent" and row.attempts == 1
    assert (row.slack_channel, row.slack_ts, row.thread_ts) == (
        message.channel,
        message.ts,
        message.ts,
    )


async def test_long_retry_after_goes_back_to_the_outbox(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    fake_slack.rate_limit_next(1, retry_after=90)
    outbox.enqueue_dispatch(notice(), key="k", channel="dispatch")
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(retrying=1)
    row = outbox.get_by_key("k")
    assert row is not None and row.status == "failed" and row.attempts == 0  # not counted
    assert row.not_before - time.time() > 80 and "rate limit" in (row.last_error or "")
    assert await deliver_due(sending(outbox), poster) == DeliveryReport()  # not due yet
    assert outbox.retry(row.id)
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    assert len(fake_slack.messages) == 1


async def test_slack_down_for_a_while_then_delivered_exactly_once(
    fake_slack: FakeSlack, db: Path, poster: SlackPoster
) -> None:
    outbox = Outbox(db, retry_base_seconds=0.01, backoff_cap_seconds=0.05)
    sender = OutboxSender(sending(outbox), poster, default_channel="#dispatch", idle_seconds=0.05)
    fake_slack.set_down(True)
    outbox.enqueue_dispatch(notice(), key="dispatch:12", channel=None)
    sender.start()
    try:
        sender.wake()
        await until(lambda: len(post_calls(fake_slack)) >= 6)
        row = outbox.get_by_key("dispatch:12")
        assert row is not None and row.status in ("failed", "sending") and fake_slack.messages == []
        fake_slack.set_down(False)
        await until(
            lambda: (r := outbox.get_by_key("dispatch:12")) is not None and r.status == "sent"
        )
        await asyncio.sleep(0.2)  # a second send would show up here
    finally:
        await sender.stop()
    assert len(fake_slack.messages) == 1
    assert fake_slack.messages[0].channel == fake_slack.channel_id("dispatch")
    assert {s for s, _ in post_calls(fake_slack)} == {503, 200}
    outbox.close()


async def test_invalid_auth_waits_out_the_retry_period_then_dies_and_retry_sends_it(
    fake_slack: FakeSlack, db: Path, poster: SlackPoster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_slack.set_invalid_auth(True)
    outbox = Outbox(db, retry_base_seconds=0.01, backoff_cap_seconds=0.02, retry_period_seconds=0.2)
    queued = outbox.enqueue_dispatch(notice(), key="k", channel="#dispatch")
    reports = []
    for _ in range(30):
        reports.append(await deliver_due(sending(outbox), poster))
        if reports[-1] == DeliveryReport(dead=1):
            break
        await asyncio.sleep(0.03)  # the backoff (at most 0.02 s) passes
    # One pass may try it more than once on a slow machine (the backoff is 10-20 ms).
    assert reports[0].retrying >= 1 and not (reports[0].sent or reports[0].dead)
    assert reports[-1] == DeliveryReport(dead=1)
    row = outbox.get(queued.id)
    assert row is not None and row.status == "dead" and "invalid_auth" in (row.last_error or "")
    assert "retry period" in (row.last_error or "")

    fake_slack.set_invalid_auth(False)
    assert outbox.retry(queued.id)
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    assert len(fake_slack.messages) == 1
    assert TOKEN not in caplog.text and TOKEN not in (row.last_error or "")
    outbox.close()


async def test_permanent_error_is_dead_at_once(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    outbox.enqueue_dispatch(notice(), key="k", channel="#nowhere")
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(dead=1)
    row = outbox.get_by_key("k")
    assert row is not None and row.attempts == 1 and "channel_not_found" in (row.last_error or "")


async def test_no_channel_anywhere_is_dead_with_a_clear_reason(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    outbox.enqueue_dispatch(notice(), key="k", channel=choose_channel(None, None))
    assert await deliver_due(sending(outbox), poster, default_channel=None) == DeliveryReport(
        dead=1
    )
    row = outbox.get_by_key("k")
    assert row is not None and "BOT_SLACK_CHANNEL" in (row.last_error or "")
    assert fake_slack.calls == []


# -- at most once -----------------------------------------------------------------------------


async def test_same_key_three_times_gives_one_message(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    results = [
        outbox.enqueue_dispatch(notice(), key="dispatch:octo/widgets#12:1", channel="#dispatch")
        for _ in range(3)
    ]
    assert [r.fresh for r in results] == [True, False, False] and len({r.id for r in results}) == 1
    await asyncio.gather(deliver_due(sending(outbox), poster), deliver_due(sending(outbox), poster))
    outbox.enqueue_dispatch(notice(), key="dispatch:octo/widgets#12:1", channel="#dispatch")
    await deliver_due(sending(outbox), poster)
    assert len(fake_slack.messages) == 1


async def test_interrupted_send_goes_out_after_a_restart_without_an_operator(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    queued = outbox.enqueue_dispatch(notice(), key="k", channel="#dispatch")
    assert [c.row.id for c in outbox.claim_due()] == [queued.id]  # then the process dies
    assert outbox.recover_interrupted() == [queued.id]
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    row = outbox.get(queued.id)
    assert row is not None and row.status == "sent"
    assert len(fake_slack.messages) == 1


# -- threads ---------------------------------------------------------------------------------


async def test_thread_reply_lands_in_the_parent_thread(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    outbox.enqueue_dispatch(notice(), key="dispatch:12", channel="#dispatch")
    # The reply is queued before its parent is in Slack; it waits for it.
    key = outbox.thread_key_for(REPO, 12)
    assert key == "dispatch:12"
    opened = pr_reply_message(
        repo=REPO,
        issue_number=12,
        pr_number=30,
        pr_title="Fix <lm_head>",
        pr_url="https://github.com/octo/widgets/pull/30",
        event="opened",
        author="agent",
    )
    merged = pr_reply_message(
        repo=REPO, issue_number=12, pr_number=30, pr_title="Fix", pr_url=None, event="merged"
    )
    outbox.enqueue_reply(key="pr:30:opened", parent_key=key, message=opened)
    outbox.enqueue_reply(
        key="pr:30:merged", parent_key="pr:30:opened", message=merged
    )  # reply to a reply
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=3)

    [parent] = fake_slack.top_level()
    replies = fake_slack.replies(parent)
    assert [r.text for r in replies] == [
        "PR #30 opened for octo/widgets#12",
        "PR #30 merged for octo/widgets#12",
    ]
    assert "&lt;lm_head&gt;" in replies[0].blocks[0]["text"]["text"]  # type: ignore[index]
    with pytest.raises(UnknownParent):
        outbox.enqueue_reply(key="x", parent_key="never-sent", message=merged)


async def test_reply_waits_while_its_parent_is_dead(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    outbox.enqueue_dispatch(notice(), key="parent", channel="#gone")
    outbox.enqueue_reply(
        key="reply",
        parent_key="parent",
        message=pr_reply_message(
            repo=REPO, issue_number=12, pr_number=1, pr_title="t", pr_url=None, event="closed"
        ),
    )
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(dead=1)
    reply = outbox.get_by_key("reply")
    assert reply is not None and reply.status == "pending"
    fake_slack.add_channel("gone")
    parent = outbox.get_by_key("parent")
    assert parent is not None and outbox.retry(parent.id)
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=2)
    [top] = fake_slack.top_level()
    assert [m.text for m in fake_slack.replies(top)] == [
        "PR #1 closed without merging for octo/widgets#12"
    ]


async def test_batch_plan_thread_is_found_for_each_issue(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    plan = plan_batch([BatchIssue(1), BatchIssue(2, "depends on #1")], max_in_flight=2)
    message = batch_plan_message(REPO, plan, {1: BatchEntry(title="one", launch_command="run 1")})
    outbox.enqueue_batch_plan(
        key="plan:1", repo=REPO, numbers=[1, 2], message=message, channel="#dispatch"
    )
    assert outbox.thread_key_for(REPO, 2) == "plan:1"
    # Released later: the dispatch notice of #2 goes into the plan's thread.
    outbox.enqueue_dispatch(notice(2), key="dispatch:2", channel="#dispatch", thread_under="plan:1")
    assert outbox.thread_key_for(REPO, 2) == "dispatch:2"
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=2)
    [top] = fake_slack.top_level()
    assert [m.text.split(":")[0] for m in fake_slack.replies(top)] == ["Dispatched octo/widgets#2"]


# -- dry-run and settings ------------------------------------------------------------------------


async def test_dry_run_records_each_message_once(
    fake_slack: FakeSlack, db: Path, outbox: Outbox
) -> None:
    settings = Settings(_env_file=None, db=db, slack_channel="#dispatch")  # type: ignore[call-arg]
    actions = ActionLog(db)
    sender = OutboxSender.from_settings(
        settings, sending(outbox), AsyncActionLog(actions, DATABASE)
    )
    outbox.enqueue_dispatch(notice(), key="dispatch:12", channel=None)
    outbox.enqueue_reply(
        key="pr:30",
        parent_key="dispatch:12",
        message=pr_reply_message(
            repo=REPO, issue_number=12, pr_number=30, pr_title="Fix", pr_url=None, event="opened"
        ),
    )
    assert await deliver_due(
        sending(outbox), sender.poster, default_channel=sender.default_channel
    ) == DeliveryReport(sent=2)
    # Even a repeated post of the same key (a crash between recording and marking) records once.
    await sender.poster.post(
        channel="#dispatch", message=dispatch_message(notice()), thread_ts=None, key="dispatch:12"
    )
    recorded = list(reversed(actions.list(target="slack")))
    assert [a["idempotency_key"] for a in recorded] == ["slack:dispatch:12", "slack:pr:30"]
    parent = outbox.get_by_key("dispatch:12")
    assert parent is not None and recorded[1]["payload"]["thread_ts"] == parent.slack_ts
    assert recorded[0]["subject"] == "#dispatch" and fake_slack.calls == []
    actions.close()


async def test_settings_pick_the_real_client(
    fake_slack: FakeSlack, db: Path, outbox: Outbox
) -> None:
    settings = Settings(
        _env_file=None,
        db=db,
        slack_token=TOKEN,
        slack_api_url=fake_slack.api_url,
        slack_channel="dispatch",
    )  # type: ignore[call-arg]
    client = client_from_settings(settings, policy=FAST)
    assert client is not None and (await client.auth_test())["bot_id"] == "B0BOT"
    assert client_from_settings(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    sender = OutboxSender.from_settings(
        settings, sending(outbox), AsyncActionLog(ActionLog(db), DATABASE), policy=FAST
    )
    outbox.enqueue_dispatch(
        notice(),
        key="k",
        channel=choose_channel(RepoConfig().slack.channel, settings.slack_channel),
    )
    sender.start()
    try:
        sender.wake()
        await until(lambda: len(fake_slack.messages) == 1)
    finally:
        await sender.stop()
    assert fake_slack.messages[0].metadata == {
        "event_type": "agent_dispatch_notice",
        "event_payload": {"key": "k"},
    }


# -- message builders ------------------------------------------------------------------------------


def test_dispatch_message_shows_everything_and_escapes_issue_text() -> None:
    evil = notice(title="<!channel> click <https://evil.example|here>")
    message = dispatch_message(evil)
    text = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    assert (
        "<!channel>" not in text and "&lt;!channel&gt;" in text and "evil.example|here>" not in text
    )
    assert f"<https://github.com/{REPO}/issues/12|#12 " in text
    assert "`actionable`" in text and "Loading a checkpoint raises KeyError" in text
    assert f"<https://artifacts.example/{REPO}/12.md?exp=1&amp;sig=abc|issue-12.md>" in text
    assert (
        "```curl -fsSL 'https://artifacts.example/octo/widgets/12.md?exp=1&amp;sig=abc' -o issue-12.md"
        ' &amp;&amp; claude "Please read issue-12.md and follow the instructions."```'
    ) in text
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"Dispatched: {REPO}#12", "emoji": True},
    }
    # The fallback text is mrkdwn too (notifications show it): escaped (issue 14, item 8).
    assert message["text"].startswith(f"Dispatched {REPO}#12: &lt;!channel&gt; click")


@pytest.mark.parametrize(
    "template",
    [
        "curl {{ link }}",
        "{{ ''.__class__.__mro__ }}",
        "{% for x in range(10**9) %}{{ x }",
        "{{ url | no_such_filter }}",
    ],
)
def test_launch_command_template_is_strict_and_sandboxed(template: str) -> None:
    with pytest.raises(PromptTemplateError):
        Renderer().config_line(template, url="https://x", number=1)


def test_launch_command_renders_url_and_number() -> None:
    assert Renderer().config_line(
        "get '{{ url }}' > i{{ number }}.md", url="https://a/b?c=1&d=2", number=7
    ) == ("get 'https://a/b?c=1&d=2' > i7.md")


async def test_big_batch_plan_fits_slack_limits(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    batch = [BatchIssue(n, f"depends on #{n - 1}" if n % 3 != 1 else "") for n in range(1, 81)]
    batch.append(BatchIssue(81, "", refusal="verdict is needs-hardware: ROCm"))
    plan = plan_batch(batch, max_in_flight=20)
    entries = {
        n: BatchEntry(
            title=f"Issue {n} " + "x" * 300,
            url=f"https://github.com/{REPO}/issues/{n}",
            artifact_url=f"https://artifacts.example/{n}.md?sig={'s' * 64}",
            launch_command=f"curl -fsSL 'https://artifacts.example/{n}.md?sig={'s' * 64}' -o issue-{n}.md",
        )
        for n in range(1, 82)
    }
    message = batch_plan_message(REPO, plan, entries, requested_by="maint")
    outbox.enqueue_batch_plan(
        key="plan", repo=REPO, numbers=range(1, 82), message=message, channel="#dispatch"
    )
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    [posted] = fake_slack.messages
    text = "\n".join(
        b["text"]["text"] if "text" in b else b["elements"][0]["text"]
        for b in posted.blocks or []
        if b["type"] != "header"
    )
    assert "*20 dispatched*, 60 queued, 1 refused (at most 20 in flight) by maint" in text
    assert "*Wave 1*" in text and "#81: verdict is needs-hardware: ROCm" in text
    assert "Not shown here to fit Slack's limits: #5, #8, #11" in text and "*Wave 3*" not in text


def test_small_batch_plan_lists_waves_commands_and_queue() -> None:
    plan = plan_batch(
        [BatchIssue(12), BatchIssue(15, "depends on #12"), BatchIssue(18)], max_in_flight=1
    )
    entries = {
        12: BatchEntry("First", launch_command="run 12"),
        15: BatchEntry("Second", launch_command="run 15"),
    }
    message = batch_plan_message(REPO, plan, entries)
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert sections[0] == "*1 dispatched*, 2 queued, 0 refused (at most 1 in flight)"
    assert sections[1:] == [
        "*Wave 1*",
        ":rocket: #12 First\n```run 12```",
        ":hourglass_flowing_sand: #18 · _queued_",
        "*Wave 2*",
        ":hourglass_flowing_sand: #15 Second (after #12) · _queued_",
    ]
    assert message["text"] == f"Batch dispatch for {REPO}: 1 dispatched, 2 queued, 0 refused"
