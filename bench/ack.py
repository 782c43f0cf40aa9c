"""Webhook acknowledgement benchmark: deliveries/s and ack latency at concurrency 32.

Runs, in one go and under the same load from a separate client process on loopback:
  1. the floor: a bare aiohttp handler that checks the HMAC, parses the JSON and inserts
     the row into SQLite (WAL, synchronous=NORMAL), nothing else;
  2. the bot (`python -m bot serve`) with the durable inbox, synchronous=NORMAL;
  3. the bot with synchronous=FULL (power-loss durability, group commit).
Prints one line per run and the bot/floor ratio. Usage:
  .venv/bin/python bench/ack.py [--deliveries 6000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-secret-0123456789abcdef"
EXAMPLE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "webhooks" / "issues.opened.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the floor: a bare handler -------------------------------------------------------------
def bare_server(port: int, db: str) -> None:
    from aiohttp import web

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE d (id TEXT PRIMARY KEY, event TEXT, payload BLOB)")
    key = SECRET.encode()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.Response(status=401)
        json.loads(body)
        conn.execute(
            "INSERT OR IGNORE INTO d VALUES (?, ?, ?)",
            (request.headers["X-GitHub-Delivery"], request.headers["X-GitHub-Event"], body),
        )
        return web.Response(status=202)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/webhook", handle)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the load: a separate process ----------------------------------------------------------
def load(port: int, deliveries: int, concurrency: int, prefix: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import aiohttp

    body = EXAMPLE.read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()

    async def run() -> None:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        next_index = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                nonlocal next_index
                while next_index < deliveries:
                    i = next_index
                    next_index += 1
                    headers = {
                        "X-GitHub-Event": "issues",
                        "X-GitHub-Delivery": f"{prefix}-{i}",
                        "X-Hub-Signature-256": signature,
                        "Content-Type": "application/json",
                    }
                    started = time.perf_counter()
                    async with session.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as r:
                        await r.read()
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                    latencies.append(time.perf_counter() - started)

            wall = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            wall = time.perf_counter() - wall
        out.put((wall, latencies, statuses))

    asyncio.run(run())


def wait_ready(port: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} did not become ready")


def measure(name: str, server: subprocess.Popen[bytes] | multiprocessing.Process, port: int, args: argparse.Namespace) -> dict[str, float]:
    wait_ready(port)
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    # Warm up, then measure.
    for phase, count in (("warm", min(500, args.deliveries)), ("run", args.deliveries)):
        worker = ctx.Process(target=load, args=(port, count, args.concurrency, f"{name.split()[0]}-{len(name)}-{phase}", results))
        worker.start()
        wall, latencies, statuses = results.get()
        worker.join()
    server.terminate()
    if isinstance(server, subprocess.Popen):
        server.wait(timeout=30)
    else:
        server.join(timeout=30)
    quantiles = statistics.quantiles(latencies, n=100)
    figures = {
        "rate": len(latencies) / wall,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
    }
    print(
        f"{name:<22} {figures['rate']:8.0f} deliveries/s   p50 {figures['p50_ms']:6.1f} ms   "
        f"p99 {figures['p99_ms']:6.1f} ms   statuses {statuses}",
        flush=True,
    )
    return figures


def bot_server(port: int, workdir: Path, synchronous: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BOT_WEBHOOK_SECRET": SECRET,
        "BOT_DB": str(workdir / f"bot-{synchronous}.sqlite3"),
        "BOT_PORT": str(port),
        "BOT_SQLITE_SYNCHRONOUS": synchronous,
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_REDELIVERY_INTERVAL_MINUTES": "0",
    }
    log = open(workdir / f"bot-{synchronous}.log", "wb")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, cwd=workdir, stdout=log, stderr=log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(f"{args.deliveries} signed deliveries of {EXAMPLE.stat().st_size} bytes, concurrency {args.concurrency}, "
          f"{os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        floor_server = multiprocessing.get_context("spawn").Process(target=bare_server, args=(port, str(workdir / "bare.sqlite3")))
        floor_server.start()
        floor = measure("floor (bare handler)", floor_server, port, args)
        results = {}
        for synchronous in ("NORMAL", "FULL"):
            port = free_port()
            results[synchronous] = measure(f"bot synchronous={synchronous}", bot_server(port, workdir, synchronous), port, args)
    for synchronous, figures in results.items():
        print(f"bot {synchronous}: {figures['rate'] / floor['rate']:.0%} of the floor's rate, p99 {figures['p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
