"""The Slack outbox: a notification is committed to SQLite before anything is sent.

The caller picks an idempotency key per notification (e.g. `dispatch:owner/name#12:<run>`),
so a redelivered label event enqueues nothing new. A background `OutboxSender` posts what
is due; a Slack outage, a rate limit or an invalid token leaves the row waiting with
capped exponential backoff, for up to `retry_period_seconds` (24 h by default) after it was
queued; only then is it 'dead' (`agent-dispatch outbox retry ID` sends it again).

Every message carries its key in Slack message metadata. A send whose outcome is unknown
(the process died mid-send, or Slack answered 5xx or dropped the connection after perhaps
posting) is followed, before the next attempt, by a look at the channel's recent history
(or the thread's replies) for that key: found, it is recorded as sent; absent, it is sent.
So Slack hears of each notice exactly once, with no manual step.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.settings import Settings
from bot.crashpoints import crashpoint
from bot.delivery.inbox import backoff_delay
from bot.errors import PermanentError, RetryLater
from bot.notify.slack import (
    DEFAULT_POLICY,
    DispatchNotice,
    Message,
    SlackRetryPolicy,
    client_from_settings,
    dispatch_message,
    retry_after_seconds,
)
from bot.store import StoreError
from bot.store.actions import AsyncActionLog
from bot.store.outbox import Claimed, Enqueued, OutboxMessage, OutboxStore, UnknownParent
from bot.store.thread import AsyncStore

log = logging.getLogger(__name__)


# Slack errors that retrying the same request cannot fix (fix the config, then `outbox retry`).
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "invalid_arguments",
        "invalid_arg_name",
        "too_many_attachments",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "cannot_reply_to_message",
        "missing_scope",
        "not_allowed_token_type",
    }
)
INTERRUPTED = (
    "interrupted while sending (the service stopped): looking for it in Slack before "
    "sending it again"
)
# Slack metadata event type of our messages (the payload is {"key": <outbox key>}).
EVENT_TYPE = "agent_dispatch_notice"
# Backoff of a waiting message: doubling from retry_base_seconds up to this.
BACKOFF_CAP_SECONDS = 600.0
# History searched for an earlier attempt: from this long before the message was queued
# (clock skew), at most this many pages of HISTORY_PAGE messages.
HISTORY_MARGIN_SECONDS = 300.0
HISTORY_PAGE = 200
HISTORY_PAGES = 10
# A Slack channel id (C..., G... private, D... direct); names must be resolved first.
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class Outbox(OutboxStore):
    """The outbox table plus the sending policy (attempts, backoff) and the notice kinds."""

    def __init__(
        self,
        path: Path | str,
        *,
        retry_base_seconds: float = 2.0,
        backoff_cap_seconds: float = BACKOFF_CAP_SECONDS,
        retry_period_seconds: float = 24 * 3600.0,
        autocheckpoint: bool = True,
    ) -> None:
        super().__init__(path, autocheckpoint=autocheckpoint)
        self.retry_base_seconds = retry_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.retry_period_seconds = retry_period_seconds

    @classmethod
    def from_settings(cls, settings: Settings, *, autocheckpoint: bool = True) -> Outbox:
        return cls(
            settings.db,
            retry_base_seconds=settings.retry_base_seconds,
            retry_period_seconds=settings.outbox_retry_hours * 3600.0,
            autocheckpoint=autocheckpoint,
        )

    def backoff(self, attempts: int) -> float:
        """Full-jitter exponential backoff, capped (the exponent too, so it never overflows)."""
        return backoff_delay(
            min(attempts, 40), self.retry_base_seconds, cap=self.backoff_cap_seconds
        )

    def enqueue_dispatch(
        self,
        notice: DispatchNotice,
        *,
        key: str,
        channel: str | None,
        thread_under: str | None = None,
    ) -> Enqueued:
        """The dispatch notice for one issue (`thread_under`: post it in that message's thread)."""
        return self.enqueue(
            key=key,
            kind="dispatch",
            message=dispatch_message(notice),
            channel=channel,
            repo=notice.repo,
            subjects=[notice.number],
            parent_key=thread_under,
        )

    def enqueue_batch_plan(
        self, *, key: str, repo: str, numbers: Iterable[int], message: Message, channel: str | None
    ) -> Enqueued:
        """The batch plan message (build it with slack.batch_plan_message)."""
        return self.enqueue(
            key=key,
            kind="batch_plan",
            message=message,
            channel=channel,
            repo=repo,
            subjects=numbers,
        )

    def enqueue_reply(self, *, key: str, parent_key: str, message: Message) -> Enqueued:
        """A reply in the thread of the message enqueued under `parent_key` (raises UnknownParent).

        It goes out after its parent is in Slack, to the same channel and thread.
        """
        parent = self.get_by_key(parent_key)
        if parent is None:
            raise UnknownParent(f"no outbox message with key {parent_key!r} to reply to")
        return self.enqueue(
            key=key, kind="reply", message=message, repo=parent.repo, parent_key=parent_key
        )

    def recover_interrupted(self) -> list[int]:
        """Messages left 'sending' by a dead process wait again, due now.

        Their attempt is kept, so the sender looks for them in Slack before sending again.
        """
        ids = self.requeue_interrupted(INTERRUPTED)
        for message_id in ids:
            log.warning(
                "outbox: message %d was being sent when the service stopped; "
                "checking Slack for it before sending again",
                message_id,
            )
        return ids


class AsyncOutbox(AsyncStore[Outbox]):
    """The outbox for async code: each call runs on the database thread (bot.store.thread)."""

    @property
    def retry_period_seconds(self) -> float:
        return self.sync.retry_period_seconds

    def backoff(self, attempts: int) -> float:
        return self.sync.backoff(attempts)

    async def enqueue_dispatch(
        self,
        notice: DispatchNotice,
        *,
        key: str,
        channel: str | None,
        thread_under: str | None = None,
    ) -> Enqueued:
        return await self._run(
            self.sync.enqueue_dispatch, notice, key=key, channel=channel, thread_under=thread_under
        )

    async def enqueue_batch_plan(
        self, *, key: str, repo: str, numbers: Iterable[int], message: Message, channel: str | None
    ) -> Enqueued:
        return await self._run(
            self.sync.enqueue_batch_plan,
            key=key,
            repo=repo,
            numbers=list(numbers),
            message=message,
            channel=channel,
        )

    async def enqueue_reply(self, *, key: str, parent_key: str, message: Message) -> Enqueued:
        return await self._run(
            self.sync.enqueue_reply, key=key, parent_key=parent_key, message=message
        )

    async def thread_key_for(self, repo: str, number: int) -> str | None:
        return await self._run(self.sync.thread_key_for, repo, number)

    async def recover_interrupted(self) -> list[int]:
        return await self._run(self.sync.recover_interrupted)

    async def claim_due(self, *, limit: int = 20) -> list[Claimed]:
        return await self._run(self.sync.claim_due, limit=limit)

    async def mark_sent(self, message_id: int, *, channel: str, ts: str, thread_ts: str) -> None:
        await self._run(
            self.sync.mark_sent, message_id, channel=channel, ts=ts, thread_ts=thread_ts
        )

    async def mark_failed(
        self, message_id: int, error: str, *, delay: float, counted: bool = True
    ) -> None:
        await self._run(self.sync.mark_failed, message_id, error, delay=delay, counted=counted)

    async def mark_dead(self, message_id: int, error: str) -> None:
        await self._run(self.sync.mark_dead, message_id, error)

    async def next_due_in(self) -> float | None:
        return await self._run(self.sync.next_due_in)

    async def known_channel_id(self, requested: str | None) -> str | None:
        return await self._run(self.sync.known_channel_id, requested)

    async def health(self) -> tuple[float, int]:
        """Age of the oldest notice not yet in Slack (0 if none), and how many are dead."""
        return await self._run(lambda: (self.sync.oldest_waiting_age(), self.sync.counts()["dead"]))


# -- posting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    channel: str  # the channel id
    ts: str


class Poster(Protocol):
    async def post(
        self, *, channel: str, message: Message, thread_ts: str | None, key: str
    ) -> Posted: ...

    async def find(
        self, *, channel: str, key: str, thread_ts: str | None, since: float
    ) -> Posted | None:
        """The message posted under `key` (in the thread `thread_ts`), if Slack has it."""
        ...


class SlackPoster:
    """chat.postMessage through slack-sdk; failures become RetryLater / PermanentError.

    Give it a client that does not retry server errors or dropped connections itself
    (SEND_POLICY): such a post may have been applied, and only the outbox, which looks
    for it first, may send it again.
    """

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def find(
        self, *, channel: str, key: str, thread_ts: str | None, since: float
    ) -> Posted | None:
        cursor = None
        for _ in range(HISTORY_PAGES):
            try:
                if thread_ts:
                    response = await self._client.conversations_replies(
                        channel=channel,
                        ts=thread_ts,
                        include_all_metadata=True,
                        limit=HISTORY_PAGE,
                        cursor=cursor,
                    )
                else:
                    response = await self._client.conversations_history(
                        channel=channel,
                        oldest=f"{since:.6f}",
                        include_all_metadata=True,
                        limit=HISTORY_PAGE,
                        cursor=cursor,
                    )
            except SlackApiError as exc:
                raise slack_failure(exc) from None
            for message in response.get("messages") or []:
                if carries_key(message, key):
                    return Posted(channel=channel, ts=str(message["ts"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        log.warning(
            "outbox: %s not among the last %d messages searched", key, HISTORY_PAGES * HISTORY_PAGE
        )
        return None

    async def post(
        self, *, channel: str, message: Message, thread_ts: str | None, key: str
    ) -> Posted:
        try:
            response = await self._client.chat_postMessage(
                channel=channel,
                text=message["text"],
                blocks=message.get("blocks"),
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                # How the outbox finds the message again after a send of unknown outcome.
                metadata={"event_type": EVENT_TYPE, "event_payload": {"key": key}},
            )
        except SlackApiError as exc:
            raise slack_failure(exc) from None
        return Posted(channel=str(response["channel"]), ts=str(response["ts"]))


def carries_key(message: dict[str, Any], key: str) -> bool:
    """Whether a message from Slack's history is ours, posted under `key`."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and payload.get("key") == key


def slack_failure(exc: SlackApiError) -> Exception:
    """What the outbox should do about a failed call (the message never holds the token)."""
    response = exc.response
    status = getattr(response, "status_code", 0)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or f"HTTP {status}")
    if status == 429 or error in ("ratelimited", "rate_limited"):
        headers = getattr(response, "headers", {}) or {}
        return RetryLater(retry_after_seconds(headers), f"Slack rate limit ({error})")
    if error in PERMANENT_SLACK_ERRORS:
        detail = "; ".join(str(e) for e in data.get("errors", []) or [])
        return PermanentError(
            f"Slack refused the message: {error}" + (f" ({detail})" if detail else "")
        )
    return RuntimeError(f"Slack error: {error} (HTTP {status})")


class DryRunPoster:
    """No Slack token: record the message in the action log, once per key."""

    def __init__(self, actions: AsyncActionLog) -> None:
        self._actions = actions

    async def post(
        self, *, channel: str, message: Message, thread_ts: str | None, key: str
    ) -> Posted:
        payload = {"channel": channel, "thread_ts": thread_ts, **message}
        await self._actions.record(
            "slack", "chat.postMessage", channel, payload, key=f"slack:{key}"
        )
        # A stable stand-in for Slack's ts, so replies in dry-run name their parent.
        digest = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
        return Posted(channel=channel, ts=f"{digest // 1_000_000}.{digest % 1_000_000:06d}")

    async def find(
        self, *, channel: str, key: str, thread_ts: str | None, since: float
    ) -> Posted | None:
        return None  # the action log records a key once, so recording again is harmless


# -- delivering ---------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0


# The sending client retries only what cannot have been applied (rate limits); a server
# error or a dropped connection goes back to the outbox, which looks before resending.
SEND_POLICY = replace(DEFAULT_POLICY, server_error_retries=0, connection_retries=0)

NO_CHANNEL = "no Slack channel: set BOT_SLACK_CHANNEL or slack.channel in the repository's config"


async def deliver_due(
    outbox: AsyncOutbox,
    poster: Poster,
    *,
    default_channel: str | None = None,
    limit: int = 20,
    stopping: asyncio.Event | None = None,
) -> DeliveryReport:
    """Send every message that is due, one at a time, recording each outcome."""
    report = DeliveryReport()
    while not (stopping and stopping.is_set()):
        claimed = await outbox.claim_due(limit=1)
        if not claimed:
            break
        await _deliver_one(outbox, poster, claimed[0], default_channel, report)
        limit -= 1
        if limit <= 0:
            break
    return report


async def _deliver_one(
    outbox: AsyncOutbox,
    poster: Poster,
    item: Claimed,
    default_channel: str | None,
    report: DeliveryReport,
) -> None:
    row = item.row
    channel = item.parent_channel if row.parent_key else (row.channel or default_channel)
    if not channel:
        await outbox.mark_dead(row.id, NO_CHANNEL)
        report.dead += 1
        log.error("outbox: message %d (%s) is dead: %s", row.id, row.key, NO_CHANNEL)
        return
    try:
        posted = None
        if row.attempts > 1:  # an earlier attempt may have reached Slack
            posted = await _earlier_post(outbox, poster, item, channel)
        found = posted is not None
        if posted is None:
            crashpoint("slack_post")
            posted = await poster.post(
                channel=channel, message=row.message, thread_ts=item.thread_ts, key=row.key
            )
            crashpoint("slack_posted")
    except RetryLater as exc:
        await outbox.mark_failed(row.id, exc.reason, delay=exc.delay, counted=False)
        report.retrying += 1
        log.warning("outbox: message %d rate limited; retrying in %.1fs", row.id, exc.delay)
        return
    except PermanentError as exc:
        await outbox.mark_dead(row.id, str(exc))
        report.dead += 1
        log.error("outbox: message %d (%s) is dead: %s", row.id, row.key, exc)
        return
    except Exception as exc:  # an outage, a bad token, a timeout: wait and try again
        await _failed(outbox, row, str(exc) or type(exc).__name__, report)
        return
    await outbox.mark_sent(
        row.id, channel=posted.channel, ts=posted.ts, thread_ts=item.thread_ts or posted.ts
    )
    report.sent += 1
    log.info(
        "outbox: %s %s %s to %s (ts %s)",
        "found in Slack (an earlier attempt got through):" if found else "sent",
        row.kind,
        row.key,
        posted.channel,
        posted.ts,
    )


async def _earlier_post(
    outbox: AsyncOutbox, poster: Poster, item: Claimed, channel: str
) -> Posted | None:
    """The message as an earlier attempt posted it, if Slack has it."""
    row = item.row
    where = channel if CHANNEL_ID.match(channel) else await outbox.known_channel_id(row.channel)
    if where is None:
        log.warning(
            "outbox: cannot look for %s in %s before sending again (give the channel's id, "
            "not its name, for exactly-once notices)",
            row.key,
            channel,
        )
        return None
    return await poster.find(
        channel=where,
        key=row.key,
        thread_ts=item.thread_ts,
        since=row.created_at - HISTORY_MARGIN_SECONDS,
    )


async def _failed(
    outbox: AsyncOutbox, row: OutboxMessage, error: str, report: DeliveryReport
) -> None:
    waited = time.time() - row.created_at
    if waited >= outbox.retry_period_seconds:
        why = (
            f"{error} (gave up after its retry period: {waited / 3600:.1f} h, "
            f"{row.attempts} attempts)"
        )
        await outbox.mark_dead(row.id, why)
        report.dead += 1
        log.error("outbox: message %d (%s) is dead: %s", row.id, row.key, why)
        return
    delay = outbox.backoff(row.attempts)
    await outbox.mark_failed(row.id, error, delay=delay)
    report.retrying += 1
    log.warning(
        "outbox: message %d failed (attempt %d): %s; retrying in %.1fs",
        row.id,
        row.attempts,
        error,
        delay,
    )


class OutboxSender:
    """The service's background loop: sends what is due, sleeps until the next due time
    or until `wake()` (call it right after enqueueing)."""

    def __init__(
        self,
        outbox: AsyncOutbox,
        poster: Poster,
        *,
        default_channel: str | None = None,
        idle_seconds: float = 30.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.outbox = outbox
        self.poster = poster
        self.default_channel = default_channel
        self.idle_seconds = idle_seconds
        self.stop_timeout = stop_timeout
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        outbox: AsyncOutbox,
        actions: AsyncActionLog,
        *,
        policy: SlackRetryPolicy = SEND_POLICY,
        session: aiohttp.ClientSession | None = None,
    ) -> OutboxSender:
        """Real Slack when BOT_SLACK_TOKEN is set, else the dry-run recorder."""
        client = client_from_settings(settings, policy=policy, session=session)
        poster: Poster = DryRunPoster(actions) if client is None else SlackPoster(client)
        log.info(
            "outbox: %s",
            "dry-run, Slack messages are recorded" if client is None else "sending to Slack",
        )
        return cls(outbox, poster, default_channel=settings.slack_channel)

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox-sender")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Finish the message in flight (within stop_timeout), then stop."""
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(self._task, self.stop_timeout)
        except (TimeoutError, asyncio.CancelledError):
            log.warning(
                "outbox: sender did not stop in %.0fs; a message may be left 'sending'",
                self.stop_timeout,
            )
        self._task = None

    async def _run(self) -> None:
        try:
            await self.outbox.recover_interrupted()
        except StoreError:
            log.exception("outbox: could not recover interrupted messages")
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await deliver_due(
                    self.outbox,
                    self.poster,
                    default_channel=self.default_channel,
                    stopping=self._stopping,
                )
                due = await self.outbox.next_due_in()
            except StoreError:
                log.exception("outbox: database error; trying again shortly")
                due = 1.0
            timeout = self.idle_seconds if due is None else min(self.idle_seconds, due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
