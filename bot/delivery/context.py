"""The explicit context handed to every handler: long-lived services plus one delivery.

No handler reaches for a global; everything it may touch is on the context.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from bot.config.loader import ConfigLoader, LoadedConfig
from bot.config.repo import RepoConfig
from bot.config.settings import Settings
from bot.delivery.inbox import Delivery, Inbox
from bot.errors import PermanentError
from bot.github import GitHubClient, GitHubFactory, GitHubUnavailable
from bot.github.trees import TreeCache
from bot.notify.outbox import AsyncOutbox, OutboxSender
from bot.observability.logs import DeliveryLogger, Redactor, bind
from bot.observability.metrics import Metrics
from bot.store.actions import AsyncActionLog
from bot.store.artifacts import AsyncArtifactStore
from bot.store.blobs import AsyncBlobTexts
from bot.store.mirror import AsyncMirrorStore
from bot.store.runs import AsyncDispatchRuns
from bot.store.thread import DatabaseThread
from bot.store.triage_records import AsyncTriageRecords
from bot.triage.render import Renderer
from bot.web.links import LinkSigner

log = logging.getLogger("bot.handlers")


class SubjectLocks:
    """One asyncio lock per issue, so work reaching an issue from two deliveries queues up."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, repo: str, number: int) -> asyncio.Lock:
        key = f"{repo}#{number}"
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock


@dataclass
class Services:
    """Built once at start-up; shared by all workers."""

    settings: Settings
    metrics: Metrics
    inbox: Inbox
    actions: AsyncActionLog
    redactor: Redactor
    github: GitHubFactory
    mirror: AsyncMirrorStore
    artifacts: AsyncArtifactStore
    links: LinkSigner
    records: AsyncTriageRecords
    renderer: Renderer
    configs: ConfigLoader
    outbox: AsyncOutbox
    sender: OutboxSender
    runs: AsyncDispatchRuns
    trees: TreeCache
    database: DatabaseThread  # where every store call above runs (bot.store.thread)
    blobs: AsyncBlobTexts
    locks: SubjectLocks = field(default_factory=SubjectLocks)

    @property
    def dry_run(self) -> bool:
        return self.settings.dry_run


@dataclass
class Batch:
    """Deliveries about one issue claimed together; deferred work runs once per batch."""

    deferred: dict[Hashable, Callable[[], Awaitable[None]]] = field(default_factory=dict)


@dataclass
class EventContext:
    services: Services
    delivery: Delivery
    batch: Batch
    log: DeliveryLogger
    _clients: list[GitHubClient] = field(default_factory=list)
    _configs: dict[str, LoadedConfig] = field(default_factory=dict)

    @classmethod
    def for_delivery(cls, services: Services, delivery: Delivery, batch: Batch) -> EventContext:
        number = delivery.subject.rsplit("#", 1)[1] if delivery.subject else None
        return cls(
            services=services,
            delivery=delivery,
            batch=batch,
            log=bind(
                log,
                delivery=delivery.id,
                event=f"{delivery.event}.{delivery.action}" if delivery.action else delivery.event,
                installation=delivery.installation_id,
                repo=delivery.repo,
                issue=number,
            ),
        )

    def defer(self, key: Hashable, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` once after every delivery of the batch was routed (coalescing a burst)."""
        self.batch.deferred[key] = job

    def should_act(self, data: dict[str, Any]) -> bool:
        """False for events a bot caused (ours included) and for deliveries with no installation."""
        sender = data.get("sender")
        if isinstance(sender, dict) and sender.get("type") == "Bot":
            self.log.debug("sender %s is a bot: nothing to do", sender.get("login"))
            return False
        if self.delivery.installation_id is None:
            self.log.info("delivery names no App installation: nothing to do")
            return False
        return True

    async def github(self) -> GitHubClient:
        """A client for this delivery's installation; its writes are keyed by the delivery id."""
        if not self._clients:
            installation = self.delivery.installation_id
            if installation is None:
                raise PermanentError(
                    "the delivery names no installation, so the bot cannot act on it"
                )
            self._clients.append(
                await self.services.github.for_installation(
                    installation, idempotency_prefix=self.delivery.id, log=self.log
                )
            )
        return self._clients[0]

    async def repo_config(self, repo: str) -> LoadedConfig:
        """The repository's config, read once per delivery (and cached across deliveries).

        In dry-run with GitHub out of reach, the defaults.
        """
        if repo not in self._configs:
            self._configs[repo] = await self._load_config(repo)
        return self._configs[repo]

    async def _load_config(self, repo: str) -> LoadedConfig:
        gh = await self.github()
        try:
            return await self.services.configs.load(gh, repo)
        except GitHubUnavailable:
            if not self.services.dry_run:
                raise
            self.log.warning("GitHub unreachable in dry-run; using the default configuration")
            return LoadedConfig(
                RepoConfig(), ("GitHub was unreachable, so the repository's file was not read",)
            )

    @property
    def github_requests(self) -> int:
        return sum(c.request_count for c in self._clients)
