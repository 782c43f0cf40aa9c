"""The Slack outbox table: notifications committed before anything is sent.

Synchronous and short: each call is one small transaction. What to send and when to
give up is decided in bot.notify.outbox; this module only records it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bot.store.db import connect, transaction

log = logging.getLogger(__name__)

Status = Literal["pending", "sending", "sent", "failed", "dead"]
STATUSES: tuple[Status, ...] = ("pending", "sending", "sent", "failed", "dead")
Kind = Literal["dispatch", "batch_plan", "reply", "digest"]
Message = dict[str, Any]  # {"text": ..., "blocks": [...]}


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


class OutboxStore:
    """The outbox table. Synchronous and short: each call is one small transaction."""

    def __init__(self, path: Path | str, *, autocheckpoint: bool = True) -> None:
        self._conn = connect(path, check_same_thread=False, autocheckpoint=autocheckpoint)

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
        with transaction(self._conn) as conn:
            existing = conn.execute(
                "SELECT id FROM outbox_messages WHERE key = ?", (key,)
            ).fetchone()
            if existing is not None:
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
        log.info("outbox: queued %s %s (id %d)", kind, key, message_id)
        return Enqueued(message_id, fresh=True)

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
    def requeue_interrupted(self, error: str) -> list[int]:
        """Messages left 'sending' by a dead process wait again, due now, their attempt kept
        (the sender looks for them in Slack first); their ids."""
        with transaction(self._conn) as conn:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM outbox_messages WHERE status = 'sending'")
            ]
            conn.executemany(
                "UPDATE outbox_messages SET status = 'failed', last_error = ?, not_before = ?"
                " WHERE id = ?",
                [(error, time.time(), i) for i in ids],
            )
        return ids

    def known_channel_id(self, requested: str | None) -> str | None:
        """The channel id Slack answered with when a message was last sent to `requested`."""
        row = self._conn.execute(
            "SELECT slack_channel FROM outbox_messages WHERE channel IS ? AND status = 'sent'"
            " AND slack_channel IS NOT NULL ORDER BY id DESC LIMIT 1",
            (requested,),
        ).fetchone()
        return None if row is None else str(row[0])

    def oldest_waiting_age(self, *, now: float | None = None) -> float:
        """Seconds since the oldest message not yet in Slack (nor dead) was queued; 0 if none."""
        row = self._conn.execute(
            "SELECT MIN(created_at) FROM outbox_messages"
            " WHERE status IN ('pending', 'sending', 'failed')"
        ).fetchone()
        if row[0] is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - row[0])

    def claim_due(self, *, now: float | None = None, limit: int = 20) -> list[Claimed]:
        """Take due messages for sending (replies only once their parent is in Slack)."""
        at = time.time() if now is None else now
        with transaction(self._conn) as conn:
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
