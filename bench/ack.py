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
ISSUES = 500
EXAMPLE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "fixtures"
    / "webhooks"
    / "issues.opened.json"
)


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
def load(
    port: int, deliveries: int, concurrency: int, prefix: str, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    import aiohttp

    # Real traffic is about many issues: the example, renumbered over ISSUES issues, signed ahead.
    example = json.loads(EXAMPLE.read_bytes())
    bodies = []
    for i in range(ISSUES):
        example["issue"]["number"] = i + 1
        body = json.dumps(example).encode()
        bodies.append(
            (body, "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest())
        )

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
                    body, signature = bodies[i % ISSUES]
                    headers = {
                        "X-GitHub-Event": "issues",
                        "X-GitHub-Delivery": f"{prefix}-{i}",
                        "X-Hub-Signature-256": signature,
                        "Content-Type": "application/json",
                    }
                    started = time.perf_counter()
                    async with session.post(
                        f"http://127.0.0.1:{port}/webhook", data=body, headers=headers
                    ) as r:
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


def drain_seconds(port: int) -> float:
    """How long the workers take to finish the backlog (queue depth 0 on /metrics)."""
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < 600:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            depth = next(
                line
                for line in r.read().decode().splitlines()
                if line.startswith("agent_dispatch_queue_depth")
            )
        if float(depth.split()[-1]) == 0:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def measure(
    name: str,
    server: subprocess.Popen[bytes] | multiprocessing.Process,
    port: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    wait_ready(port)
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    # Warm up, then measure.
    for phase, count in (("warm", min(500, args.deliveries)), ("run", args.deliveries)):
        worker = ctx.Process(
            target=load,
            args=(port, count, args.concurrency, f"{name.split()[0]}-{len(name)}-{phase}", results),
        )
        worker.start()
        wall, latencies, statuses = results.get()
        worker.join()
    drained = drain_seconds(port) if isinstance(server, subprocess.Popen) else None
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
    drain = "" if drained is None else f"   backlog processed {drained:4.1f} s after the last ack"
    print(
        f"{name:<22} {figures['rate']:8.0f} deliveries/s   p50 {figures['p50_ms']:6.1f} ms   "
        f"p99 {figures['p99_ms']:6.1f} ms   statuses {statuses}{drain}",
        flush=True,
    )
    return figures


def bot_server(port: int, workdir: Path, synchronous: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
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
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], env=env, cwd=workdir, stdout=log, stderr=log
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are reported"
    )
    args = parser.parse_args()
    print(
        f"{args.deliveries} signed deliveries of {EXAMPLE.stat().st_size} bytes about {ISSUES} issues, "
        f"concurrency {args.concurrency}, {os.cpu_count()} cores, {args.rounds} interleaved rounds",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {"floor": [], "NORMAL": [], "FULL": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for round_number in range(args.rounds):
            port = free_port()
            floor_server = multiprocessing.get_context("spawn").Process(
                target=bare_server, args=(port, str(workdir / f"bare-{round_number}.sqlite3"))
            )
            floor_server.start()
            results["floor"].append(measure("floor (bare handler)", floor_server, port, args))
            for synchronous in ("NORMAL", "FULL"):
                port = free_port()
                server = bot_server(port, workdir / f"r{round_number}", synchronous)
                results[synchronous].append(
                    measure(f"bot synchronous={synchronous}", server, port, args)
                )
    median = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }
    floor = median["floor"]
    print(f"median floor: {floor['rate']:.0f} deliveries/s, p99 {floor['p99_ms']:.1f} ms")
    for synchronous in ("NORMAL", "FULL"):
        m = median[synchronous]
        print(
            f"median bot {synchronous}: {m['rate']:.0f} deliveries/s = {m['rate'] / floor['rate']:.0%} of the floor, "
            f"p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
