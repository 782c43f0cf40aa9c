"""The explicit context handed to every handler: long-lived services plus one delivery.

No handler reaches for a global; everything it may touch is on the context.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from bot.actions import ActionLog
from bot.inbox import Delivery, Inbox
from bot.metrics import Metrics
from bot.observability import DeliveryLogger, Redactor, bind
from bot.settings import Settings

log = logging.getLogger("bot.handlers")


@dataclass
class Services:
    """Built once at start-up; shared by all workers."""

    settings: Settings
    metrics: Metrics
    inbox: Inbox
    actions: ActionLog
    redactor: Redactor
    extras: dict[str, Any] = field(default_factory=dict)

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
