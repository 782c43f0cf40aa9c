"""Background workers: take deliveries from the inbox and route them to the handlers.

Each delivery of a claimed batch is settled on its own: a failed one is retried with
backoff and dead-lettered (error kept) when attempts run out, a `RetryLater` (rate
limit) puts it back without using up an attempt, and its neighbours finish regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Hashable

from gidgethub import routing, sansio

from bot.delivery.context import Batch, EventContext, Services
from bot.delivery.inbox import Delivery, backoff_delay
from bot.errors import PermanentError, RetryLater
from bot.store import StoreError

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
        self._stopping = False

    @property
    def running(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    async def start(self) -> None:
        await self._services.inbox.recover()
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._work(), name=f"worker-{i}") for i in range(self._count)
        ]

    async def stop(self) -> None:
        """Cancel the workers; the flag also ends a worker whose cancellation got lost."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self) -> None:
        inbox = self._services.inbox
        while not self._stopping:
            await self._defer_to_intake()
            inbox.new_work.clear()
            try:
                batch = await inbox.claim()
            except StoreError:  # e.g. the database is locked by another process for long
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
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as the event fires, and stop() would then wait forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.01)):
                await inbox.new_work.wait()

    async def process(self, deliveries: list[Delivery]) -> None:
        """Route one claimed batch, run its deferred jobs, and settle each delivery on its own.

        A delivery whose handler fails is settled with its own error (retry, rate-limit wait
        or dead letter); the others of the batch are done as if it had not been there. A
        deferred job that fails settles only the deliveries that asked for it.
        """
        services = self._services
        batch = Batch()
        contexts: dict[str, EventContext] = {}
        ignored: list[Delivery] = []
        failures: dict[str, Exception] = {}
        askers: dict[Hashable, list[Delivery]] = {}
        started = time.perf_counter()
        for delivery in deliveries:
            ctx = contexts[delivery.id] = EventContext.for_delivery(services, delivery, batch)
            before = dict(batch.deferred)
            try:
                event = sansio.Event(delivery.data(), event=delivery.event, delivery_id=delivery.id)
                if not self._router.fetch(event):
                    ignored.append(delivery)
                    ctx.log.debug("no handler wants this event; recorded as ignored")
                    continue
                with services.metrics.handler_seconds.labels(delivery.event).time():
                    await self._router.dispatch(event, ctx)
            except Exception as exc:
                failures[delivery.id] = exc
            finally:
                # A job (re)registered under a key by this delivery is one it asked for.
                for key, job in batch.deferred.items():
                    if before.get(key) is not job:
                        askers.setdefault(key, []).append(delivery)
            await asyncio.sleep(0)  # handlers may not yield; let intake run between deliveries
        for key, job in batch.deferred.items():
            waiting = [d for d in askers.get(key, []) if d.id not in failures]
            if not waiting:
                continue  # only failed deliveries asked for it: their retry will ask again
            try:
                await job()
            except Exception as exc:
                for d in waiting:
                    failures[d.id] = exc
        elapsed = time.perf_counter() - started
        requests = sum(ctx.github_requests for ctx in contexts.values())
        succeeded = [d for d in deliveries if d.id not in failures]
        await services.inbox.finish([d.id for d in succeeded if d in ignored], "ignored")
        await services.inbox.finish([d.id for d in succeeded if d not in ignored], "done")
        for delivery in succeeded:
            status = "ignored" if delivery in ignored else "done"
            services.metrics.deliveries.labels(delivery.event, status).inc()
            contexts[delivery.id].log.info(
                "%s in %.0f ms (batch of %d, %d GitHub requests)",
                status,
                elapsed * 1000,
                len(deliveries),
                requests,
            )
        for delivery in deliveries:
            if delivery.id in failures:
                await self._settle_failure(delivery, contexts[delivery.id], failures[delivery.id])

    async def _settle_failure(self, delivery: Delivery, ctx: EventContext, exc: Exception) -> None:
        services = self._services
        if isinstance(exc, RetryLater):
            await self._retry(delivery, ctx, exc.delay, f"retry later: {exc.reason}", counted=False)
            return
        if isinstance(exc, PermanentError):
            await self._dead(delivery, ctx, f"{type(exc).__name__}: {exc}")
            return
        redact = services.redactor.text
        error = redact("".join(traceback.format_exception_only(type(exc), exc)).strip())
        if delivery.attempts >= services.settings.max_attempts:
            ctx.log.error(
                "failed %d times, dead-lettered: %s", delivery.attempts, error, exc_info=exc
            )
            await self._dead(delivery, ctx, error)
            return
        delay = backoff_delay(delivery.attempts, services.settings.retry_base_seconds)
        ctx.log.warning("attempt %d failed: %s", delivery.attempts, error, exc_info=exc)
        await self._retry(delivery, ctx, delay, error, counted=True)

    async def _retry(
        self, delivery: Delivery, ctx: EventContext, delay: float, error: str, *, counted: bool
    ) -> None:
        await self._services.inbox.retry_later([delivery.id], delay, error, counted=counted)
        self._services.metrics.deliveries.labels(delivery.event, "failed").inc()
        ctx.log.warning("back in the queue in %.0f s: %s", delay, error)

    async def _dead(self, delivery: Delivery, ctx: EventContext, error: str) -> None:
        await self._services.inbox.finish([delivery.id], "dead", error)
        self._services.metrics.deliveries.labels(delivery.event, "dead").inc()
        ctx.log.error("dead-lettered: %s", error)
