"""The aiohttp application: webhook intake, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from bot.delivery.context import Services
from bot.delivery.inbox import describe
from bot.delivery.workers import WorkerPool
from bot.observability.metrics import UNVERIFIED, event_label
from bot.web.intake import Rejection, check_headers, debounce_for, parse_payload, verify_signature

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
POOL = web.AppKey("pool", WorkerPool)
READ_CHUNK = 64 * 1024


async def read_capped(request: web.Request, limit: int, timeout: float) -> bytes:
    """Read the body, stopping as soon as it passes `limit` bytes or `timeout` seconds."""
    if request.content_length is not None and request.content_length > limit:
        raise Rejection(413, f"payload larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise Rejection(413, f"payload larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise Rejection(408, f"body not received within {timeout:g} seconds") from None
    return b"".join(chunks)


def _acknowledge(status: int, text: str, delivery_id: str) -> web.Response:
    """The answer to a stored delivery, without a JSON encoder on the hot path.

    `delivery_id` passed check_headers (letters, digits and `._:-`), so it needs no escaping.
    """
    body = b'{"status": "%s", "delivery": "%s"}' % (text.encode(), delivery_id.encode())
    return web.Response(body=body, status=status, content_type="application/json")


def _answer(status: int, text: str, **extra: Any) -> web.Response:
    response = web.json_response({"status": text, **extra}, status=status)
    if status in (408, 413):
        response.force_close()  # do not drain a huge body we refuse to read
    return response


async def webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    try:
        event, delivery_id = check_headers(
            request.headers.get("X-GitHub-Event"), request.headers.get("X-GitHub-Delivery")
        )
        body = await read_capped(request, settings.max_body_bytes, settings.body_timeout_seconds)
        verify_signature(
            settings.require_webhook_secret(), body, request.headers.get("X-Hub-Signature-256")
        )
        data = parse_payload(body)
    except Rejection as rejection:
        # Nothing of an unverified request becomes a label or reaches a log line raw.
        services.metrics.deliveries.labels(UNVERIFIED, f"rejected_{rejection.status}").inc()
        log.warning(
            "rejected delivery %s: %s",
            ascii(request.headers.get("X-GitHub-Delivery", "-")[:100]),
            rejection.reason,
        )
        return _answer(rejection.status, "rejected", reason=rejection.reason)
    repository = data.get("repository")
    if isinstance(repository, dict) and isinstance(repository.get("private"), bool):
        services.links.note_visibility(
            str(repository.get("full_name")), private=repository["private"]
        )
    now = time.time()
    delivery = describe(
        event,
        data,
        delivery_id,
        body,
        now=now,
        delay=debounce_for(event, data, settings.debounce_seconds),
    )
    fresh = await services.inbox.add(delivery)
    if not fresh:
        services.metrics.deliveries.labels(event_label(event), "duplicate").inc()
        return _acknowledge(200, "duplicate", delivery_id)
    services.metrics.deliveries.labels(event_label(event), "accepted").inc()
    if event == "ping":
        return _acknowledge(200, "pong", delivery_id)
    return _acknowledge(202, "accepted", delivery_id)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    pool = request.app[POOL]
    checks = {"database_writable": await services.inbox.writable(), "workers_running": pool.running}
    return web.json_response(
        {"ready": all(checks.values()), **checks}, status=200 if all(checks.values()) else 503
    )


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    counts = await services.inbox.counts()
    services.metrics.queue_depth.set(counts["pending"] + counts["running"] + counts["failed"])
    oldest_waiting, dead = await services.outbox.health()
    services.metrics.outbox_oldest_waiting.set(oldest_waiting)
    services.metrics.outbox_dead.set(dead)
    return web.Response(body=services.metrics.render(), content_type="text/plain", charset="utf-8")


def _plain_number(text: str) -> bool:
    """ASCII digits of a sane length ("²".isdigit() is True, int() of it fails)."""
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


async def artifact(request: web.Request) -> web.Response:
    """A stored prompt, for a link whose signature and expiry are valid; 404 for anything else."""
    services = request.app[SERVICES]
    not_found = web.Response(status=404, text="not found")
    if not services.links.valid(
        request.rel_url.raw_path, request.query.get("expires"), request.query.get("sig")
    ):
        return not_found
    info = request.match_info
    if not (_plain_number(info["number"]) and _plain_number(info["version"])):
        return not_found
    repo, number, version = (
        f"{info['owner']}/{info['name']}",
        int(info["number"]),
        int(info["version"]),
    )
    if await services.artifacts.revoked(repo, number, version):
        return not_found
    text = await services.artifacts.get(repo, number, version)
    if text is None:
        return not_found
    return web.Response(
        text=text,
        content_type="text/markdown",
        charset="utf-8",
        headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/artifacts/{owner}/{name}/{number}/{version}.md", artifact)
