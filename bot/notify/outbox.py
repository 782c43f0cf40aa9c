"""The Slack outbox: a notification is committed to SQLite before anything is sent.

The caller picks an idempotency key per notification (e.g. `dispatch:owner/name#12:<run>`),
so a redelivered label event enqueues nothing new and Slack hears of a dispatch at most
once. A background `OutboxSender` posts what is due; a Slack outage, a rate limit or an
invalid token leaves the row waiting with backoff, and after `max_attempts` failures it
is 'dead' until an operator runs `agent-dispatch outbox retry ID`.

A message that was being sent when the process died may or may not have reached Slack;
to keep "at most once" it is marked dead with that explanation instead of being resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.settings import Settings
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
from bot.store.actions import ActionLog
from bot.store.db import connect

log = logging.getLogger(__name__)

Status = Literal["pending", "sending", "sent", "failed", "dead"]
STATUSES: tuple[Status, ...] = ("pending", "sending", "sent", "failed", "dead")
Kind = Literal["dispatch", "batch_plan", "reply"]

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
    "interrupted while sending (the service stopped): it may or may not be in Slack; "
    "check the channel, then `agent-dispatch outbox retry {id}` if it is missing"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,       -- chosen by the caller: one notification per key, ever
    kind TEXT NOT NULL,             -- dispatch | batch_plan | reply
    repo TEXT,
    channel TEXT,                   -- as requested; NULL: the service's default channel
    parent_key TEXT,                -- post into the thread of this message
    payload TEXT NOT NULL,          -- {"text": ..., "blocks": [...]}
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL,
    slack_channel TEXT,             -- the channel id Slack answered with
    slack_ts TEXT,
    thread_ts TEXT                  -- root of the thread this message is in (own ts when top-level)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox_messages (status, not_before, id);
CREATE INDEX IF NOT EXISTS outbox_parent ON outbox_messages (parent_key);
CREATE TABLE IF NOT EXISTS outbox_subjects (
    message_id INTEGER NOT NULL REFERENCES outbox_messages(id) ON DELETE CASCADE,
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    PRIMARY KEY (message_id, repo, number)
);
CREATE INDEX IF NOT EXISTS outbox_subjects_issue ON outbox_subjects (repo, number);
"""


class UnknownParent(LookupError):
    """A thread reply was asked for a message the outbox never held."""


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    key: str
    kind: str
    repo: str | None
    channel: str | None
    parent_key: str | None
    message: Message
    status: Status
    attempts: int
    not_before: float
    last_error: str | None
    created_at: float
    sent_at: float | None
    slack_channel: str | None
    slack_ts: str | None
    thread_ts: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxMessage:
        return cls(
            id=row["id"],
            key=row["key"],
            kind=row["kind"],
            repo=row["repo"],
            channel=row["channel"],
            parent_key=row["parent_key"],
            message=json.loads(row["payload"]),
            status=row["status"],
            attempts=row["attempts"],
            not_before=row["not_before"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            sent_at=row["sent_at"],
            slack_channel=row["slack_channel"],
            slack_ts=row["slack_ts"],
            thread_ts=row["thread_ts"],
        )

    def summary(self) -> dict[str, Any]:
        """What `outbox list --json` shows (the blocks stay out; the fallback text is enough)."""
        return {
            "id": self.id,
            "key": self.key,
            "kind": self.kind,
            "status": self.status,
            "repo": self.repo,
            "channel": self.slack_channel or self.channel,
            "parent_key": self.parent_key,
            "text": self.message.get("text", ""),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "not_before": self.not_before,
            "sent_at": self.sent_at,
            "ts": self.slack_ts,
            "thread_ts": self.thread_ts,
        }


@dataclass(frozen=True)
class Enqueued:
    id: int
    fresh: bool  # False: the key was already in the outbox and nothing new was added


@dataclass(frozen=True)
class Claimed:
    """A message taken for sending, with where it goes resolved from its parent."""

    row: OutboxMessage
    thread_ts: str | None  # the parent's thread root, for replies
    parent_channel: str | None


class Outbox:
    """The outbox table. Synchronous and short: each call is one small transaction."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_attempts: int = 5,
        retry_base_seconds: float = 2.0,
        autocheckpoint: bool = True,
    ) -> None:
        self._conn = connect(path, check_same_thread=False, autocheckpoint=autocheckpoint)
        self._conn.executescript(SCHEMA)
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds

    @classmethod
    def from_settings(cls, settings: Settings, *, autocheckpoint: bool = True) -> Outbox:
        return cls(
            settings.db,
            max_attempts=settings.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            autocheckpoint=autocheckpoint,
        )

    def close(self) -> None:
        self._conn.close()

    # -- enqueueing ---------------------------------------------------------------------
    def enqueue(
        self,
        *,
        key: str,
        kind: Kind,
        message: Message,
        channel: str | None = None,
        repo: str | None = None,
        subjects: Iterable[int] = (),
        parent_key: str | None = None,
        now: float | None = None,
    ) -> Enqueued:
        """Commit one notification; the same key again is a no-op (fresh=False).

        `subjects` are the issue numbers (of `repo`) the message is about, so a later PR
        follow-up can find the thread with `thread_key_for`.
        """
        at = time.time() if now is None else now
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            existing = conn.execute(
                "SELECT id FROM outbox_messages WHERE key = ?", (key,)
            ).fetchone()
            if existing is not None:
                conn.execute("COMMIT")
                return Enqueued(existing["id"], fresh=False)
            if parent_key is not None and (
                conn.execute(
                    "SELECT 1 FROM outbox_messages WHERE key = ?", (parent_key,)
                ).fetchone()
                is None
            ):
                raise UnknownParent(f"no outbox message with key {parent_key!r} to reply to")
            message_id = conn.execute(
                "INSERT INTO outbox_messages (key, kind, repo, channel, parent_key, payload, not_before,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, kind, repo, channel, parent_key, json.dumps(message), at, at),
            ).lastrowid
            assert message_id is not None
            if repo is not None:
                conn.executemany(
                    "INSERT OR IGNORE INTO outbox_subjects (message_id, repo, number) VALUES (?, ?, ?)",
                    [(message_id, repo, n) for n in subjects],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("outbox: queued %s %s (id %d)", kind, key, message_id)
        return Enqueued(message_id, fresh=True)

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

    def thread_key_for(self, repo: str, number: int) -> str | None:
        """Key of the newest top-level notice about the issue (dispatch or batch plan)."""
        row = self._conn.execute(
            "SELECT m.key FROM outbox_messages m JOIN outbox_subjects s ON s.message_id = m.id"
            " WHERE s.repo = ? AND s.number = ? AND m.kind IN ('dispatch', 'batch_plan')"
            " ORDER BY m.id DESC LIMIT 1",
            (repo, number),
        ).fetchone()
        return None if row is None else str(row["key"])

    # -- reading ------------------------------------------------------------------------
    def get(self, message_id: int) -> OutboxMessage | None:
        row = self._conn.execute(
            "SELECT * FROM outbox_messages WHERE id = ?", (message_id,)
        ).fetchone()
        return None if row is None else OutboxMessage.from_row(row)

    def get_by_key(self, key: str) -> OutboxMessage | None:
        row = self._conn.execute("SELECT * FROM outbox_messages WHERE key = ?", (key,)).fetchone()
        return None if row is None else OutboxMessage.from_row(row)

    def messages(self, *, status: str | None = None, limit: int = 50) -> list[OutboxMessage]:
        sql = "SELECT * FROM outbox_messages"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [OutboxMessage.from_row(r) for r in self._conn.execute(sql, params).fetchall()]

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT status, COUNT(*) FROM outbox_messages GROUP BY status"
        ).fetchall()
        return {s: 0 for s in STATUSES} | {r[0]: r[1] for r in rows}

    # -- operators ----------------------------------------------------------------------
    def retry(self, message_id: int, *, now: float | None = None) -> bool:
        """Send a dead or failed message again now. A sent one is never resent."""
        cur = self._conn.execute(
            "UPDATE outbox_messages SET status = 'pending', attempts = 0, not_before = ?, last_error = NULL"
            " WHERE id = ? AND status IN ('dead', 'failed', 'pending')",
            (time.time() if now is None else now, message_id),
        )
        return cur.rowcount == 1

    # -- the sender's side --------------------------------------------------------------
    def recover_interrupted(self) -> list[int]:
        """Messages left 'sending' by a dead process become dead (see the module docstring)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM outbox_messages WHERE status = 'sending'")
            ]
            conn.executemany(
                "UPDATE outbox_messages SET status = 'dead', last_error = ? WHERE id = ?",
                [(INTERRUPTED.format(id=i), i) for i in ids],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for message_id in ids:
            log.warning(
                "outbox: message %d was being sent when the service stopped; marked dead",
                message_id,
            )
        return ids

    def claim_due(self, *, now: float | None = None, limit: int = 20) -> list[Claimed]:
        """Take due messages for sending (replies only once their parent is in Slack)."""
        at = time.time() if now is None else now
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT m.*, p.thread_ts AS parent_thread_ts, p.slack_channel AS parent_channel"
                " FROM outbox_messages m LEFT JOIN outbox_messages p ON p.key = m.parent_key"
                " WHERE m.status IN ('pending', 'failed') AND m.not_before <= ?"
                " AND (m.parent_key IS NULL OR p.status = 'sent')"
                " ORDER BY m.not_before, m.id LIMIT ?",
                (at, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE outbox_messages SET status = 'sending', attempts = attempts + 1 WHERE id = ?",
                [(r["id"],) for r in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        claimed = []
        for r in rows:
            row = replace(OutboxMessage.from_row(r), status="sending", attempts=r["attempts"] + 1)
            claimed.append(Claimed(row, r["parent_thread_ts"], r["parent_channel"]))
        return claimed

    def mark_sent(
        self, message_id: int, *, channel: str, ts: str, thread_ts: str, now: float | None = None
    ) -> None:
        self._conn.execute(
            "UPDATE outbox_messages SET status = 'sent', sent_at = ?, slack_channel = ?, slack_ts = ?,"
            " thread_ts = ?, last_error = NULL WHERE id = ?",
            (time.time() if now is None else now, channel, ts, thread_ts, message_id),
        )

    def mark_failed(
        self,
        message_id: int,
        error: str,
        *,
        delay: float,
        counted: bool = True,
        now: float | None = None,
    ) -> None:
        """Back to waiting after `delay`; an uncounted failure (a rate limit) keeps its attempt."""
        self._conn.execute(
            "UPDATE outbox_messages SET status = 'failed', last_error = ?, not_before = ?,"
            " attempts = attempts - ? WHERE id = ?",
            (error, (time.time() if now is None else now) + delay, 0 if counted else 1, message_id),
        )

    def mark_dead(self, message_id: int, error: str) -> None:
        self._conn.execute(
            "UPDATE outbox_messages SET status = 'dead', last_error = ? WHERE id = ?",
            (error, message_id),
        )

    def next_due_in(self, *, now: float | None = None) -> float | None:
        """Seconds until the next waiting message is due (None: nothing waits)."""
        row = self._conn.execute(
            "SELECT MIN(m.not_before) FROM outbox_messages m LEFT JOIN outbox_messages p"
            " ON p.key = m.parent_key WHERE m.status IN ('pending', 'failed')"
            " AND (m.parent_key IS NULL OR p.status = 'sent')"
        ).fetchone()
        if row[0] is None:
            return None
        return max(0.0, row[0] - (time.time() if now is None else now))


# -- posting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    channel: str  # the channel id
    ts: str


class Poster(Protocol):
    async def post(
        self, *, channel: str, message: Message, thread_ts: str | None, key: str
    ) -> Posted: ...


class SlackPoster:
    """chat.postMessage through slack-sdk; failures become RetryLater / PermanentError."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

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
                # Lets a person find the message of a key when reconciling an interrupted send.
                metadata={"event_type": "agent_dispatch_notice", "event_payload": {"key": key}},
            )
        except SlackApiError as exc:
            raise slack_failure(exc) from None
        return Posted(channel=str(response["channel"]), ts=str(response["ts"]))


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

    def __init__(self, actions: ActionLog) -> None:
        self._actions = actions

    async def post(
        self, *, channel: str, message: Message, thread_ts: str | None, key: str
    ) -> Posted:
        payload = {"channel": channel, "thread_ts": thread_ts, **message}
        self._actions.record("slack", "chat.postMessage", channel, payload, key=f"slack:{key}")
        # A stable stand-in for Slack's ts, so replies in dry-run name their parent.
        digest = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
        return Posted(channel=channel, ts=f"{digest // 1_000_000}.{digest % 1_000_000:06d}")


# -- delivering ---------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0


NO_CHANNEL = "no Slack channel: set BOT_SLACK_CHANNEL or slack.channel in the repository's config"


async def deliver_due(
    outbox: Outbox,
    poster: Poster,
    *,
    default_channel: str | None = None,
    limit: int = 20,
    stopping: asyncio.Event | None = None,
) -> DeliveryReport:
    """Send every message that is due, one at a time, recording each outcome."""
    report = DeliveryReport()
    while not (stopping and stopping.is_set()):
        claimed = outbox.claim_due(limit=1)
        if not claimed:
            break
        await _deliver_one(outbox, poster, claimed[0], default_channel, report)
        limit -= 1
        if limit <= 0:
            break
    return report


async def _deliver_one(
    outbox: Outbox,
    poster: Poster,
    item: Claimed,
    default_channel: str | None,
    report: DeliveryReport,
) -> None:
    row = item.row
    channel = item.parent_channel if row.parent_key else (row.channel or default_channel)
    if not channel:
        outbox.mark_dead(row.id, NO_CHANNEL)
        report.dead += 1
        log.error("outbox: message %d (%s) is dead: %s", row.id, row.key, NO_CHANNEL)
        return
    try:
        posted = await poster.post(
            channel=channel, message=row.message, thread_ts=item.thread_ts, key=row.key
        )
    except RetryLater as exc:
        outbox.mark_failed(row.id, exc.reason, delay=exc.delay, counted=False)
        report.retrying += 1
        log.warning("outbox: message %d rate limited; retrying in %.1fs", row.id, exc.delay)
        return
    except PermanentError as exc:
        outbox.mark_dead(row.id, str(exc))
        report.dead += 1
        log.error("outbox: message %d (%s) is dead: %s", row.id, row.key, exc)
        return
    except Exception as exc:  # an outage, a bad token, a timeout: wait and try again
        error = str(exc) or type(exc).__name__
        if row.attempts >= outbox.max_attempts:
            outbox.mark_dead(row.id, f"{error} (after {row.attempts} attempts)")
            report.dead += 1
            log.error(
                "outbox: message %d (%s) is dead after %d attempts: %s",
                row.id,
                row.key,
                row.attempts,
                error,
            )
            return
        delay = backoff_delay(row.attempts, outbox.retry_base_seconds)
        outbox.mark_failed(row.id, error, delay=delay)
        report.retrying += 1
        log.warning(
            "outbox: message %d failed (attempt %d): %s; retrying in %.1fs",
            row.id,
            row.attempts,
            error,
            delay,
        )
        return
    outbox.mark_sent(
        row.id, channel=posted.channel, ts=posted.ts, thread_ts=item.thread_ts or posted.ts
    )
    report.sent += 1
    log.info("outbox: sent %s %s to %s (ts %s)", row.kind, row.key, posted.channel, posted.ts)


class OutboxSender:
    """The service's background loop: sends what is due, sleeps until the next due time
    or until `wake()` (call it right after enqueueing)."""

    def __init__(
        self,
        outbox: Outbox,
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
        outbox: Outbox,
        actions: ActionLog,
        *,
        policy: SlackRetryPolicy = DEFAULT_POLICY,
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
            self.outbox.recover_interrupted()
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
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await deliver_due(
                    self.outbox,
                    self.poster,
                    default_channel=self.default_channel,
                    stopping=self._stopping,
                )
                due = self.outbox.next_due_in()
            except sqlite3.Error:
                log.exception("outbox: database error; trying again shortly")
                due = 1.0
            timeout = self.idle_seconds if due is None else min(self.idle_seconds, due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
