"""Wiring: build the services, the workers and the web app, and run them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.actions import ActionLog
from bot.context import Services
from bot.inbox import Inbox
from bot.metrics import Metrics
from bot.observability import Redactor
from bot.routing import build_router
from bot.settings import Settings
from bot.web import POOL, SERVICES, add_routes
from bot.workers import WorkerPool

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, redactor: Redactor | None = None) -> web.Application:
    """The whole service as one aiohttp application (tests run exactly this)."""
    settings.require_webhook_secret()
    services = Services(
        settings=settings,
        metrics=Metrics(),
        inbox=Inbox(settings.db, synchronous=settings.sqlite_synchronous),
        actions=ActionLog(settings.db),
        redactor=redactor or Redactor.from_settings(settings),
    )
    pool = WorkerPool(services, build_router(), settings.workers)
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SERVICES] = services
    app[POOL] = pool
    add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        services.inbox.start()
        await pool.start()
        log.info(
            "serving with %d workers on %s (%s)",
            settings.workers,
            settings.db,
            "dry-run: writes are recorded, not sent" if settings.dry_run else f"App {settings.app_id}",
        )
        try:
            yield
        finally:
            await pool.stop()
            await services.inbox.close()
            services.actions.close()

    app.cleanup_ctx.append(lifecycle)
    return app
