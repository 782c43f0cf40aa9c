"""Issue 14 at the HTTP edge: what an unauthenticated request can do to the service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.service import create_app
from tests.service_fixtures import WEBHOOK_SECRET, make_settings, signed


async def raw_request(client: TestClient, head: bytes, body: bytes = b"") -> int:
    """Send bytes as they are (aiohttp's client would refuse a header with \\xff)."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(head + b"\r\n" + body)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


def webhook_head(event: bytes, signature: bytes, body: bytes) -> bytes:
    return (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-GitHub-Event: " + event + b"\r\nX-GitHub-Delivery: d-1\r\n"
        b"X-Hub-Signature-256: " + signature + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n"
    )


async def test_unsigned_requests_do_not_grow_metrics(bot_client: TestClient) -> None:
    before = len(await (await bot_client.get("/metrics")).read())
    for i in range(300):
        name = "made_up_" + "".join(chr(ord("a") + int(d)) for d in str(i))
        response = await bot_client.post(
            "/webhook",
            data=b"{}",
            headers={"X-GitHub-Event": name, "X-GitHub-Delivery": f"d{i}"},
        )
        assert response.status == 401
    text = await (await bot_client.get("/metrics")).text()
    assert "made_up" not in text
    assert len(text) < before + 1000
    assert 'event="unverified",status="rejected_401"} 300.0' in text


@pytest.mark.parametrize(
    ("event", "signature", "status"),
    [
        (b"issues\xff", None, 400),
        (b"\xff", None, 400),
        (b"issues", b"sha256=\xff", 401),
        (b"issues", b"\xff" * 71, 401),
    ],
)
async def test_non_ascii_headers_are_a_clean_refusal(
    bot_client: TestClient, event: bytes, signature: bytes | None, status: int
) -> None:
    body = json.dumps({"zen": "x", "hook_id": 1}).encode()
    _, headers = signed("ping", body, secret=WEBHOOK_SECRET)
    good = headers["X-Hub-Signature-256"].encode()
    assert await raw_request(bot_client, webhook_head(event, signature or good, body), body) == (
        status
    )
    metrics = await bot_client.get("/metrics")
    assert metrics.status == 200


async def test_signed_unknown_event_is_counted_as_other(bot_client: TestClient) -> None:
    body, headers = signed("made_up_event", {"action": "x"}, secret=WEBHOOK_SECRET)
    response = await bot_client.post("/webhook", data=body, headers=headers)
    assert response.status in (200, 202)
    text = await (await bot_client.get("/metrics")).text()
    assert "made_up_event" not in text and 'event="other"' in text


@pytest.fixture
async def impatient_client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    settings = make_settings(tmp_path, idle_timeout_seconds=0.5, body_timeout_seconds=0.5)
    client: TestClient = await aiohttp_client(await create_app(settings))
    return client


async def answer_within(client: TestClient, data: bytes, seconds: float) -> bytes:
    """Send `data`, then nothing; the first bytes the server answers."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(100), seconds)
    finally:
        writer.close()


async def test_a_slow_body_is_a_408(impatient_client: TestClient) -> None:
    body = b'{"zen": "x"}'
    _, headers = signed("ping", body, secret=WEBHOOK_SECRET)
    head = webhook_head(b"ping", headers["X-Hub-Signature-256"].encode(), body * 100)
    answer = await answer_within(impatient_client, head + b"\r\n" + body, 5)
    assert answer.startswith(b"HTTP/1.1 408")
