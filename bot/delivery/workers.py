"""Background workers: take deliveries from the inbox and route them to the handlers.

A failed batch is retried with backoff and dead-lettered (error kept) when attempts
run out; a `RetryLater` (rate limit) puts it back without using up an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import traceback

from gidgethub import routing, sansio

from bot.delivery.context import Batch, EventContext, Services
from bot.delivery.inbox import Delivery, backoff_delay
from bot.errors import PermanentError, RetryLater

log = logging.getLogger(__name__)

# The longest a worker sleeps before looking at the inbox again (a replay from the
# command line is noticed within this time).
IDLE_POLL_SECONDS = 1.0
# Acknowledging GitHub comes first: while deliveries keep arriving, a worker waits for a
# quiet moment (no delivery for INTAKE_QUIET_SECONDS), but never longer than
# MAX_DEFER_SECONDS per batch, so a burst is stored fast and processed right after.
INTAKE_QUIET_SECONDS = 0.05
MAX_DEFER_SECONDS = 5.0


class WorkerPool:
    def __init__(self, services: Services, router: routing.Router, count: int) -> None:
        self._services = services
        self._router = router
        self._count = count
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    async def start(self) -> None:
        await self._services.inbox.recover()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._work(), name=f"worker-{i}") for i in range(self._count)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self) -> None:
        inbox = self._services.inbox
        while True:
            await self._defer_to_intake()
            inbox.new_work.clear()
            try:
                batch = await inbox.claim()
            except sqlite3.Error:  # e.g. the database is locked by another process for long
                log.exception("could not claim work from the inbox; trying again shortly")
                await asyncio.sleep(IDLE_POLL_SECONDS)
                continue
            if not batch:
                await self._idle()
                continue
            try:
                await self.process(batch)
            except Exception:  # never let one batch kill the worker
                log.exception(
                    "unexpected failure while settling deliveries %s", [d.id for d in batch]
                )
            finally:
                inbox.release(batch[0].subject)

    async def _defer_to_intake(self) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + MAX_DEFER_SECONDS
        while (
            loop.time() < give_up
            and loop.time() - self._services.inbox.last_intake < INTAKE_QUIET_SECONDS
        ):
            await asyncio.sleep(INTAKE_QUIET_SECONDS)

    async def _idle(self) -> None:
        inbox = self._services.inbox
        wait = await inbox.next_ready_in()
        timeout = IDLE_POLL_SECONDS if wait is None else min(IDLE_POLL_SECONDS, wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inbox.new_work.wait(), timeout=max(timeout, 0.01))

    async def process(self, deliveries: list[Delivery]) -> None:
        """Route one claimed batch, run its deferred jobs, and settle every delivery."""
        services = self._services
        inbox = services.inbox
        batch = Batch()
        routed: list[Delivery] = []
        ignored: list[Delivery] = []
        contexts: list[EventContext] = []
        started = time.perf_counter()
        try:
            for delivery in deliveries:
                ctx = EventContext.for_delivery(services, delivery, batch)
                contexts.append(ctx)
                event = sansio.Event(delivery.data(), event=delivery.event, delivery_id=delivery.id)
                if not self._router.fetch(event):
                    ignored.append(delivery)
                    ctx.log.debug("no handler wants this event; recorded as ignored")
                    continue
                with services.metrics.handler_seconds.labels(delivery.event).time():
                    await self._router.dispatch(event, ctx)
                routed.append(delivery)
                await asyncio.sleep(0)  # handlers may not yield; let intake run between deliveries
            for job in batch.deferred.values():
                await job()
        except RetryLater as exc:
            await self._settle_retry(
                deliveries, exc.delay, f"retry later: {exc.reason}", counted=False
            )
            return
        except PermanentError as exc:
            await self._dead(deliveries, contexts, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            await self._failed(deliveries, contexts, exc)
            return
        await inbox.finish([d.id for d in ignored], "ignored")
        await inbox.finish([d.id for d in routed], "done")
        elapsed = time.perf_counter() - started
        requests = sum(ctx.github_requests for ctx in contexts)
        for delivery, ctx in zip(deliveries, contexts, strict=False):
            status = "ignored" if delivery in ignored else "done"
            services.metrics.deliveries.labels(delivery.event, status).inc()
            ctx.log.info(
                "%s in %.0f ms (batch of %d, %d GitHub requests)",
                status,
                elapsed * 1000,
                len(deliveries),
                requests,
            )

    async def _settle_retry(
        self, deliveries: list[Delivery], delay: float, error: str, *, counted: bool
    ) -> None:
        await self._services.inbox.retry_later(
            [d.id for d in deliveries], delay, error, counted=counted
        )
        for d in deliveries:
            self._services.metrics.deliveries.labels(d.event, "failed").inc()
        log.warning(
            "deliveries %s back in the queue in %.0f s: %s",
            [d.id for d in deliveries],
            delay,
            error,
        )

    async def _dead(
        self, deliveries: list[Delivery], contexts: list[EventContext], error: str
    ) -> None:
        await self._services.inbox.finish([d.id for d in deliveries], "dead", error)
        for d in deliveries:
            self._services.metrics.deliveries.labels(d.event, "dead").inc()
        (contexts[-1].log if contexts else log).error("dead-lettered: %s", error)

    async def _failed(
        self, deliveries: list[Delivery], contexts: list[EventContext], exc: Exception
    ) -> None:
        redact = self._services.redactor.text
        error = redact("".join(traceback.format_exception_only(type(exc), exc)).strip())
        attempts = max(d.attempts for d in deliveries)
        ctx_log = contexts[-1].log if contexts else log
        if attempts >= self._services.settings.max_attempts:
            ctx_log.error("failed %d times, dead-lettered: %s", attempts, error, exc_info=exc)
            await self._dead(deliveries, contexts, error)
            return
        delay = backoff_delay(attempts, self._services.settings.retry_base_seconds)
        ctx_log.warning("attempt %d failed: %s", attempts, error, exc_info=exc)
        await self._settle_retry(deliveries, delay, error, counted=True)
