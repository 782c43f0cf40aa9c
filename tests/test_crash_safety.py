"""Crash safety: a SIGKILLed service processes every acknowledged delivery after restart."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.service_fixtures import WEBHOOK_SECRET, delivery_rows, example, signed

DELIVERIES = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BOT_DB": str(tmp_path / "bot.sqlite3"),
        "BOT_PORT": str(port),
        "BOT_WORKERS": "4",
        # Edits and comments wait a little, so deliveries are still queued when the kill lands.
        "BOT_DEBOUNCE_SECONDS": "0.5",
        "BOT_REDELIVERY_INTERVAL_MINUTES": "0",
    }
    log = open(tmp_path / f"service-{port}.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )


async def wait_ready(session: aiohttp.ClientSession, port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("service did not become ready")


def payloads() -> list[tuple[str, dict]]:
    kinds = [
        ("issues", example("issues.edited")),
        ("issue_comment", example("issue_comment.created")),
        ("issues", example("issues.opened")),
    ]
    out = []
    for i in range(DELIVERIES):
        event, base = kinds[i % len(kinds)]
        payload = copy.deepcopy(base)
        payload["issue"]["number"] = 1000 + i % 17
        out.append((event, payload))
    return out


async def test_sigkill_mid_work_then_restart_processes_each_delivery_exactly_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = start_service(tmp_path, port)
    ids: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, port)
            semaphore = asyncio.Semaphore(16)

            async def deliver(i: int, event: str, payload: dict) -> None:
                body, headers = signed(event, payload, delivery=f"crash-{i:03d}")
                async with (
                    semaphore,
                    session.post(
                        f"http://127.0.0.1:{port}/webhook", data=body, headers=headers
                    ) as r,
                ):
                    assert r.status == 202
                ids.append(headers["X-GitHub-Delivery"])

            await asyncio.gather(*(deliver(i, e, p) for i, (e, p) in enumerate(payloads())))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    rows = delivery_rows(tmp_path / "bot.sqlite3")
    assert len(rows) == DELIVERIES, "every acknowledged delivery was stored before the answer"
    unfinished = [r for r in rows if r["status"] not in ("done", "ignored")]
    assert unfinished, "the kill should land while work is still queued"

    process = start_service(tmp_path, port)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = delivery_rows(tmp_path / "bot.sqlite3")
            if all(r["status"] in ("done", "ignored") for r in rows):
                break
            await asyncio.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert [r for r in rows if r["status"] not in ("done", "ignored")] == []
    assert {r["completions"] for r in rows} == {1}, "each delivery finished exactly once"
