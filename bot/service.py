"""Wiring: build the services, the workers and the web app, and run them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.config.loader import ConfigLoader
from bot.config.settings import Settings
from bot.dashboard.app import add_dashboard
from bot.delivery.context import Services
from bot.delivery.inbox import Inbox
from bot.delivery.routing import build_router
from bot.delivery.workers import WorkerPool
from bot.github import GitHubFactory, RetryPolicy
from bot.github.redelivery import keep_catching_up
from bot.github.trees import TreeCache
from bot.notify.outbox import AsyncOutbox, Outbox, OutboxSender
from bot.observability.logs import Redactor
from bot.observability.metrics import Metrics
from bot.store.actions import ActionLog, AsyncActionLog
from bot.store.artifacts import ArtifactStore, AsyncArtifactStore
from bot.store.blobs import AsyncBlobTexts, BlobTexts
from bot.store.inbox import InboxQueries
from bot.store.mirror import AsyncMirrorStore, MirrorStore
from bot.store.runs import AsyncDispatchRuns, DispatchRuns
from bot.store.thread import DatabaseThread
from bot.store.trees import TreeStore
from bot.store.triage_records import AsyncTriageRecords, TriageRecords
from bot.triage.render import Renderer
from bot.web.app import POOL, SERVICES, add_routes
from bot.web.links import LinkSigner
from bot.web.setup import add_routes as add_registration_routes

log = logging.getLogger(__name__)


def build_services(
    settings: Settings,
    session: aiohttp.ClientSession,
    *,
    redactor: Redactor | None = None,
    github_policy: RetryPolicy | None = None,
    record_writes: bool = False,
) -> Services:
    """Every long-lived service; `record_writes` records GitHub writes even with App credentials."""
    metrics = Metrics()
    # Every connection of the service leaves WAL checkpoints to the inbox's checkpointer,
    # and every store call of the service runs on one database thread.
    database = DatabaseThread()
    actions = AsyncActionLog(ActionLog(settings.db, autocheckpoint=False), database)
    outbox = AsyncOutbox(Outbox.from_settings(settings, autocheckpoint=False), database)
    return Services(
        settings=settings,
        metrics=metrics,
        inbox=Inbox(settings.db, synchronous=settings.sqlite_synchronous),
        actions=actions,
        redactor=redactor or Redactor.from_settings(settings),
        github=GitHubFactory(
            settings,
            session,
            metrics,
            actions if settings.dry_run or record_writes else None,
            policy=github_policy,
        ),
        mirror=AsyncMirrorStore(MirrorStore(settings.db, autocheckpoint=False), database),
        artifacts=AsyncArtifactStore(
            ArtifactStore(
                settings.db,
                settings.artifact_dir,
                autocheckpoint=False,
                keep_versions=settings.artifact_keep_versions,
                retention_seconds=settings.artifact_retention_days * 86400,
            ),
            database,
        ),
        links=LinkSigner.from_settings(settings),
        records=AsyncTriageRecords(TriageRecords(settings.db, autocheckpoint=False), database),
        renderer=Renderer(),
        configs=ConfigLoader(),
        outbox=outbox,
        sender=OutboxSender.from_settings(settings, outbox, actions, session=session),
        runs=AsyncDispatchRuns(DispatchRuns(settings.db, autocheckpoint=False), database),
        trees=TreeCache(TreeStore(settings.db, autocheckpoint=False), database=database),
        database=database,
        blobs=AsyncBlobTexts(BlobTexts(settings.db, autocheckpoint=False), database),
    )


async def create_app(
    settings: Settings,
    *,
    redactor: Redactor | None = None,
    github_policy: RetryPolicy | None = None,
) -> web.Application:
    """The whole service as one aiohttp application (tests run exactly this)."""
    settings.require_webhook_secret()
    session = aiohttp.ClientSession()
    services = build_services(settings, session, redactor=redactor, github_policy=github_policy)
    pool = WorkerPool(services, build_router(), settings.workers)
    inbox_reader = InboxQueries(settings.db)
    # aiohttp's default keeps an idle connection for an hour.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        handler_args={"keepalive_timeout": settings.idle_timeout_seconds},
    )
    app[SERVICES] = services
    app[POOL] = pool
    add_routes(app)
    add_dashboard(app, services)
    if settings.dry_run:  # no App yet: offer the registration flow
        add_registration_routes(app, settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        services.inbox.start()
        services.sender.start()
        await pool.start()
        catching_up = None
        if not settings.dry_run and settings.redelivery_interval_minutes:
            catching_up = asyncio.get_running_loop().create_task(
                keep_catching_up(
                    services.github,
                    inbox_reader.known,
                    interval_minutes=settings.redelivery_interval_minutes,
                ),
                name="redelivery-catch-up",
            )
        log.info(
            "serving with %d workers on %s (%s)",
            settings.workers,
            settings.db,
            "dry-run: writes are recorded, not sent"
            if settings.dry_run
            else f"App {settings.app_id}",
        )
        try:
            yield
        finally:
            if catching_up is not None:
                catching_up.cancel()
            await pool.stop()
            await services.sender.stop()
            await services.inbox.close()
            await session.close()
            for store in (
                inbox_reader,
                services.actions,
                services.mirror,
                services.artifacts,
                services.records,
                services.outbox,
                services.runs,
            ):
                store.close()
            services.database.close()

    app.cleanup_ctx.append(lifecycle)
    return app
