"""The outbox after crashes, lost answers and long outages: every notice in Slack exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.notify.outbox import DeliveryReport, Outbox, SlackPoster, deliver_due
from bot.notify.slack import dispatch_message, make_client, text_reply_message
from bot.web.app import SERVICES
from tests.fakeslack import TOKEN, FakeSlack
from tests.test_slack_outbox import FAST, notice, sending


@pytest.fixture
def poster(fake_slack: FakeSlack) -> SlackPoster:
    # As in the service: a server error or a dropped connection is the outbox's to retry.
    policy = replace(FAST, server_error_retries=0, connection_retries=0)
    return SlackPoster(make_client(TOKEN, base_url=fake_slack.api_url, policy=policy))


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(
        tmp_path / "bot.sqlite3",
        retry_base_seconds=0.01,
        backoff_cap_seconds=0.05,
        retry_period_seconds=3600,
    )
    yield box
    box.close()


def keys_in_slack(fake: FakeSlack) -> list[str]:
    return [str((m.metadata or {}).get("event_payload", {}).get("key")) for m in fake.messages]


async def _crash_after_posting(outbox: Outbox, poster: SlackPoster, *, reached_slack: bool) -> None:
    """A sender claims the message, maybe posts it, and the process dies before recording it."""
    [claimed] = outbox.claim_due()
    if reached_slack:
        await poster.post(
            channel=claimed.parent_channel or "C0DISPATCH",
            message=claimed.row.message,
            thread_ts=claimed.thread_ts,
            key=claimed.row.key,
        )


@pytest.mark.parametrize("reached_slack", [True, False], ids=["posted", "not-posted"])
async def test_a_send_interrupted_by_a_crash_reaches_slack_exactly_once_after_restart(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster, reached_slack: bool
) -> None:
    fake_slack.add_channel("other")
    other = fake_slack.channel_id("other")
    outbox.enqueue_dispatch(notice(), key="dispatch:12", channel="C0DISPATCH")
    await _crash_after_posting(outbox, poster, reached_slack=reached_slack)
    for i in range(3):  # someone else talks in the channel meanwhile
        await poster.post(
            channel="C0DISPATCH", message={"text": f"chatter {i}"}, thread_ts=None, key=f"x{i}"
        )
    await poster.post(
        channel=other, message={"text": "elsewhere"}, thread_ts=None, key="dispatch:12-no"
    )

    outbox.recover_interrupted()  # the restarted service, no operator involved
    await deliver_due(sending(outbox), poster)
    row = outbox.get_by_key("dispatch:12")
    assert row is not None and row.status == "sent", row
    assert keys_in_slack(fake_slack).count("dispatch:12") == 1
    [ours] = [
        m
        for m in fake_slack.messages
        if (m.metadata or {}).get("event_payload") == {"key": "dispatch:12"}
    ]
    assert row.slack_ts == ours.ts and row.slack_channel == "C0DISPATCH"


async def test_an_interrupted_thread_reply_is_found_in_its_thread(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    outbox.enqueue_dispatch(notice(), key="parent", channel="C0DISPATCH")
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    outbox.enqueue_reply(key="reply", parent_key="parent", message=text_reply_message("PR opened"))
    await _crash_after_posting(outbox, poster, reached_slack=True)
    outbox.recover_interrupted()
    await deliver_due(sending(outbox), poster)
    assert keys_in_slack(fake_slack).count("reply") == 1
    assert outbox.get_by_key("reply").status == "sent"  # type: ignore[union-attr]


async def test_a_post_slack_applied_but_answered_502_is_not_doubled(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    fake_slack.apply_then_fail_next(1)
    outbox.enqueue_dispatch(notice(), key="dispatch:12", channel="C0DISPATCH")
    for _ in range(5):
        await deliver_due(sending(outbox), poster)
        await asyncio.sleep(0.05)
    assert keys_in_slack(fake_slack) == ["dispatch:12"]
    assert outbox.get_by_key("dispatch:12").status == "sent"  # type: ignore[union-attr]


async def test_a_channel_given_by_name_is_looked_up_by_the_id_slack_answered_with(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    outbox.enqueue_dispatch(notice(1), key="first", channel="#dispatch")
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    outbox.enqueue_dispatch(notice(2), key="second", channel="#dispatch")
    await _crash_after_posting(outbox, poster, reached_slack=True)
    outbox.recover_interrupted()
    await deliver_due(sending(outbox), poster)
    assert keys_in_slack(fake_slack) == ["first", "second"]


async def test_slack_down_for_many_attempts_then_back_sends_every_notice(
    fake_slack: FakeSlack, outbox: Outbox, poster: SlackPoster
) -> None:
    fake_slack.set_down(True)
    outbox.enqueue(
        key="k", kind="dispatch", message=dispatch_message(notice()), channel="C0DISPATCH"
    )
    for _ in range(12):  # far more failures than the old five attempts
        await deliver_due(sending(outbox), poster)
        await asyncio.sleep(outbox.next_due_in() or 0)
    assert outbox.get_by_key("k").status == "failed"  # type: ignore[union-attr]
    fake_slack.set_down(False)
    await asyncio.sleep(outbox.next_due_in() or 0)
    assert await deliver_due(sending(outbox), poster) == DeliveryReport(sent=1)
    assert keys_in_slack(fake_slack) == ["k"]


async def test_backoff_is_capped_and_a_notice_dies_only_after_its_retry_period(
    fake_slack: FakeSlack, tmp_path: Path, poster: SlackPoster
) -> None:
    box = Outbox(
        tmp_path / "b.sqlite3",
        retry_base_seconds=0.01,
        backoff_cap_seconds=0.05,
        retry_period_seconds=0.5,
    )
    fake_slack.set_down(True)
    box.enqueue(key="k", kind="dispatch", message={"text": "hi"}, channel="C0DISPATCH")
    reports = []
    while len(reports) < 200:
        reports.append(await deliver_due(sending(box), poster))
        assert (box.next_due_in() or 0) <= 0.05
        if box.get_by_key("k").status == "dead":  # type: ignore[union-attr]
            break
        await asyncio.sleep(box.next_due_in() or 0)
    row = box.get_by_key("k")
    assert row is not None and row.status == "dead" and "retry period" in (row.last_error or "")
    assert row.attempts > 5
    box.close()


async def test_metrics_show_the_oldest_waiting_notice_and_the_dead_ones(bot_client) -> None:
    outbox = bot_client.app[SERVICES].outbox.sync
    hour_ago = time.time() - 3600
    waiting = outbox.enqueue(key="w", kind="dispatch", message={"text": "hi"}, now=hour_ago)
    outbox.mark_failed(waiting.id, "Slack error: HTTP 503", delay=3600)
    dead = outbox.enqueue(key="d", kind="dispatch", message={"text": "hi"})
    outbox.mark_dead(dead.id, "Slack refused the message: invalid_blocks")
    text = await (await bot_client.get("/metrics")).text()
    [age] = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("agent_dispatch_outbox_oldest_pending_seconds ")
    ]
    assert 3500 < age < 3700
    assert "agent_dispatch_outbox_dead 1.0" in text
