"""The candidates digest: the top dispatch candidates posted to Slack once a period.

Off by default; a repository turns it on with `slack.digest: daily` or `weekly`. Each
period has one outbox key (`digest:owner/name:2026-11-30`, `...:2026-W48`), and the
outbox keeps one message per key for good, so a restart, a second replica or a second
tick in the same period never posts twice. The scheduler only decides what is due; the
outbox sends it, with its retries and exactly-once checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.config.repo import SlackConfig
from bot.dashboard.candidates import Candidate, rank
from bot.errors import PermanentError
from bot.github import GitHubUnavailable
from bot.notify.slack import Message, choose_channel, clip, escape, link, one_line

if TYPE_CHECKING:
    from bot.dashboard.app import Dashboard

log = logging.getLogger(__name__)

CHECK_SECONDS = 300.0


def due_key(repo: str, slack: SlackConfig, now: datetime) -> str | None:
    """The outbox key of the digest due at `now`, or None (off, or not yet the hour)."""
    now = now.astimezone(UTC)
    if slack.digest == "daily":
        return None if now.hour < slack.digest_hour else f"digest:{repo}:{now:%Y-%m-%d}"
    if slack.digest == "weekly":
        if now.weekday() == 0 and now.hour < slack.digest_hour:
            return None
        year, week, _ = now.isocalendar()
        return f"digest:{repo}:{year}-W{week:02d}"
    return None


def digest_message(repo: str, candidates: list[Candidate], *, dashboard_url: str) -> Message:
    """One Slack message: each candidate with its link, impact and one-line reason."""
    lines = []
    for position, c in enumerate(candidates, 1):
        f = c.facts
        title = link(f.url, f"#{f.number} {clip(one_line(f.title), 120)}")
        lines.append(
            f"{position}. *{title}* (impact {c.impact:.2f})\n"
            f"    {escape(clip(c.reason, 300))}\n    _{escape(clip(c.evidence, 300))}_"
        )
    header = f"Dispatch candidates: {repo}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(header, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), 3000)}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Dispatch from {link(dashboard_url, 'the dashboard')}"
                    " or with the `dispatch` label.",
                }
            ],
        },
    ]
    fallback = f"{header}: " + ", ".join(f"#{c.facts.number}" for c in candidates)
    return {"text": clip(fallback, 3000), "blocks": blocks}


class DigestScheduler:
    """Checks every repository's digest setting every few minutes; enqueues what is due."""

    def __init__(self, dashboard: Dashboard, *, clock: Callable[[], datetime] | None = None):
        self._dashboard = dashboard
        self._clock = clock or (lambda: datetime.now(UTC))

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Enqueue every digest due now; returns the keys enqueued."""
        dashboard = self._dashboard
        if dashboard.settings.dry_run:
            return []  # no App: no repository config to read
        at = now or self._clock()
        enqueued = []
        for repo in await dashboard.query(lambda q: q.repos()):
            try:
                key = await self._one(repo, at)
            except (PermanentError, GitHubUnavailable) as exc:
                log.warning("digest for %s skipped this time: %s", repo, exc)
                continue
            if key is not None:
                enqueued.append(key)
        if enqueued:
            dashboard.services.sender.wake()
        return enqueued

    async def _one(self, repo: str, now: datetime) -> str | None:
        dashboard = self._dashboard
        gh = await dashboard.installation_client(repo)
        if gh is None:
            return None
        slack = (await dashboard.services.configs.load(gh, repo)).config.slack
        key = due_key(repo, slack, now)
        if key is None:
            return None
        outbox = dashboard.stores.outbox
        if await dashboard.run(lambda: outbox.get_by_key(key)) is not None:
            return None  # sent (or queued) earlier this period
        facts = await dashboard.query(lambda q: q.candidate_facts(repo))
        ranked = rank(facts, now=now, limit=slack.digest_size)
        if not ranked:
            return None
        url = f"{dashboard.settings.public_url.rstrip('/')}/ui/candidates?repo={repo}"
        message = digest_message(repo, ranked, dashboard_url=url)
        channel = choose_channel(slack.channel, dashboard.settings.slack_channel)
        numbers = [c.facts.number for c in ranked]

        def enqueue() -> bool:
            return outbox.enqueue(
                key=key,
                kind="digest",
                message=message,
                channel=channel,
                repo=repo,
                subjects=numbers,
            ).fresh

        fresh = await dashboard.run(enqueue)
        if fresh:
            log.info("digest %s queued with %d candidates", key, len(ranked))
        return key if fresh else None

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        """Check every `interval` seconds, the first time one interval after start-up."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception:  # one bad tick must not stop the digests for good
                log.exception("digest check failed; trying again in %.0f s", interval)
