"""Webhook acknowledgement benchmark: acks/s, p50 and p99 against a no-op Probot app.

In one run, in interleaved rounds, under the same load from a separate client process on
loopback (the same signed ~1 KB `issues` delivery, renumbered over 500 issues):
  floor   a bare aiohttp handler: HMAC, JSON parse, SQLite insert (WAL, synchronous=NORMAL);
  probot  a no-op Probot 14 app (`npm install probot` into a temporary folder; it verifies
          the signature, runs an empty handler and persists nothing). If it cannot be
          installed or started, the reason is printed and a no-op Node `http` server that
          verifies the HMAC with @octokit/webhooks-methods stands in;
  NORMAL  the bot (`python -m bot serve`), BOT_SQLITE_SYNCHRONOUS=NORMAL;
  FULL    the bot, BOT_SQLITE_SYNCHRONOUS=FULL (one fsync per group commit);
  and, with --levers, the bot with uvloop turned off (BOT_EVENT_LOOP=asyncio); with
  --baseline DIR, the bot from another source tree (to measure a change in the same run).
Each server starts fresh (empty database) for each measurement. Prints each one's rate,
p50, p99 and its ratio to the no-op app, per concurrency, with the load average. Usage:
  .venv/bin/python bench/ack.py [--deliveries 4000] [--concurrency 32 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import multiprocessing
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef"
ISSUES = 500
EXAMPLE = ROOT / "tests" / "fixtures" / "webhooks" / "issues.opened.json"

PROBOT_APP = """
import { createServer } from "node:http";
import { generateKeyPairSync } from "node:crypto";
import { Probot, createNodeMiddleware } from "probot";

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const probot = new Probot({
  appId: 1,
  privateKey: privateKey.export({ type: "pkcs1", format: "pem" }),
  secret: process.env.WEBHOOK_SECRET,
  logLevel: "warn",
});
const middleware = await createNodeMiddleware(
  (app) => { app.onAny(async () => {}); },
  { probot, webhooksPath: "/webhook" },
);
createServer((req, res) => {
  if (req.url === "/readyz") { res.writeHead(200).end("ok"); return; }
  middleware(req, res, () => { res.writeHead(404).end(); });
}).listen(Number(process.env.PORT), "127.0.0.1");
"""

NODE_FALLBACK_APP = """
import { createServer } from "node:http";
import { verify } from "@octokit/webhooks-methods";

const secret = process.env.WEBHOOK_SECRET;
createServer((req, res) => {
  if (req.url === "/readyz") { res.writeHead(200).end("ok"); return; }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const ok = await verify(secret, body, req.headers["x-hub-signature-256"] || "");
    if (!ok) { res.writeHead(401).end(); return; }
    JSON.parse(body);
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
  });
}).listen(Number(process.env.PORT), "127.0.0.1");
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_delivery() -> dict[str, object]:
    """GitHub's `issues.opened` example cut to about 1 KB: the fields a real app reads."""
    example = json.loads(EXAMPLE.read_bytes())
    issue = example["issue"]
    user = {k: issue["user"][k] for k in ("login", "id", "type")}
    return {
        "action": "opened",
        "issue": {
            **{k: issue[k] for k in ("id", "number", "title", "state", "created_at")},
            "url": issue["url"],
            "html_url": issue["html_url"],
            "user": user,
            "labels": [],
            "body": "Running the example script fails with CUDA out of memory on a 24 GB card"
            " after the first epoch. Steps: install from main, run examples/train.py with the"
            " default config and batch size 8. Expected: training finishes. Observed: OOM.",
        },
        "repository": {
            k: example["repository"][k] for k in ("id", "name", "full_name", "private", "html_url")
        }
        | {"owner": {k: example["repository"]["owner"][k] for k in ("login", "id", "type")}},
        "sender": user,
        "installation": {"id": 2311213},
    }


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
    port: int,
    deliveries: int,
    concurrency: int,
    prefix: str,
    payload: str,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    import aiohttp

    # Real traffic is about many issues: one delivery, renumbered over ISSUES issues, signed ahead.
    example = small_delivery() if payload == "small" else json.loads(EXAMPLE.read_bytes())
    bodies = []
    for i in range(ISSUES):
        delivery = copy.deepcopy(example)
        delivery["issue"]["number"] = i + 1  # type: ignore[index]
        body = json.dumps(delivery).encode()
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

    try:  # the same (cheapest available) client loop for every server
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


def wait_ready(port: int, server: subprocess.Popen[bytes] | multiprocessing.Process) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = server.poll() is None if isinstance(server, subprocess.Popen) else server.is_alive()
        if not alive:
            raise RuntimeError(f"server on {port} exited before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not become ready")


def stop(server: subprocess.Popen[bytes] | multiprocessing.Process) -> None:
    server.terminate()
    if isinstance(server, subprocess.Popen):
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    else:
        server.join(timeout=30)


def measure(
    label: str,
    server: subprocess.Popen[bytes] | multiprocessing.Process,
    port: int,
    concurrency: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    try:
        wait_ready(port, server)
        ctx = multiprocessing.get_context("spawn")
        results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        for phase, count in (("warm", args.warmup), ("run", args.deliveries)):
            worker = ctx.Process(
                target=load,
                args=(
                    port,
                    count,
                    concurrency,
                    f"{label.replace(' ', '-')}-{phase}",
                    args.payload,
                    results,
                ),
            )
            worker.start()
            wall, latencies, statuses = results.get()
            worker.join()
    finally:
        stop(server)
    if set(statuses) - {200, 202}:
        print(f"  WARNING: {label} answered {statuses}: not every delivery was accepted")
    quantiles = statistics.quantiles(latencies, n=100)
    figures = {
        "rate": len(latencies) / wall,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "load": os.getloadavg()[0],
    }
    print(
        f"  {label:<22} c={concurrency:<4} {figures['rate']:7.0f}/s   "
        f"p50 {figures['p50_ms']:6.1f} ms   p99 {figures['p99_ms']:6.1f} ms   "
        f"statuses {statuses}   load {figures['load']:.1f}",
        flush=True,
    )
    return figures


def node_server(port: int, app_dir: Path, script: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PORT": str(port), "WEBHOOK_SECRET": SECRET, "LOG_LEVEL": "warn"}
    log = open(app_dir / f"{script}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        ["node", script], env=env, cwd=app_dir, stdout=log, stderr=subprocess.STDOUT
    )


def prepare_probot(folder: Path) -> tuple[str, str | None]:
    """Install Probot into `folder` and check that it starts: (script, why it fell back)."""
    (folder / "probot-app.mjs").write_text(PROBOT_APP)
    (folder / "fallback-app.mjs").write_text(NODE_FALLBACK_APP)
    why = None
    if not (folder / "node_modules" / "probot" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            why = "npm is not on PATH"
        else:
            done = subprocess.run(
                [npm, "install", "--prefix", str(folder), "probot@14", "--no-audit", "--no-fund"],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                why = f"npm install probot@14 failed: {done.stderr.strip()[-500:]}"
    if why is None:
        port = free_port()
        server = node_server(port, folder, "probot-app.mjs")
        try:
            wait_ready(port, server)
        except RuntimeError as exc:
            log = (folder / "probot-app.mjs.log").read_text(errors="replace").strip()[-800:]
            why = f"Probot did not start ({exc}): {log}"
        finally:
            stop(server)
    if why is None:
        version = json.loads((folder / "node_modules/probot/package.json").read_text())["version"]
        print(f"probot {version} on node {node_version()}", flush=True)
        return "probot-app.mjs", None
    modules = folder / "node_modules" / "@octokit"
    modules.mkdir(parents=True, exist_ok=True)
    methods = modules / "webhooks-methods"
    if not methods.exists():
        methods.symlink_to(ROOT / "node_modules" / "@octokit" / "webhooks-methods")
    print(f"FALLBACK to a no-op node http server: {why}", flush=True)
    return "fallback-app.mjs", why


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def bot_server(
    port: int, workdir: Path, synchronous: str, loop: str, source: Path | None = None
) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **({"PYTHONPATH": str(source.resolve())} if source else {}),
        "BOT_WEBHOOK_SECRET": SECRET,
        "BOT_DB": str(workdir / "bot.sqlite3"),
        "BOT_PORT": str(port),
        "BOT_SQLITE_SYNCHRONOUS": synchronous,
        "BOT_EVENT_LOOP": loop,
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_REDELIVERY_INTERVAL_MINUTES": "0",
    }
    log = open(workdir / "bot.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved; medians reported")
    parser.add_argument("--payload", choices=("small", "example"), default="small")
    parser.add_argument(
        "--levers", action="store_true", help="also run the bot with uvloop off (NORMAL, FULL)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also run the bot from this source tree (PYTHONPATH), e.g. a `git worktree` of main",
    )
    parser.add_argument(
        "--probot-dir", type=Path, help="reuse this Probot install (default: a fresh temp folder)"
    )
    args = parser.parse_args()
    size = len(json.dumps(small_delivery())) if args.payload == "small" else EXAMPLE.stat().st_size
    print(
        f"{args.deliveries} signed `issues` deliveries of {size} bytes about {ISSUES} issues "
        f"(after {args.warmup} warm-up), concurrency {args.concurrency}, {os.cpu_count()} cores, "
        f"{args.rounds} interleaved rounds; load average at start "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        probot_dir = args.probot_dir or workdir / "probot"
        probot_dir.mkdir(parents=True, exist_ok=True)
        script, fell_back = prepare_probot(probot_dir)
        reference = "no-op node" if fell_back else "no-op probot"

        def start(
            name: str, port: int, where: Path
        ) -> subprocess.Popen[bytes] | multiprocessing.Process:
            if name == "floor":
                floor = multiprocessing.get_context("spawn").Process(
                    target=bare_server, args=(port, str(where / "bare.sqlite3"))
                )
                floor.start()
                return floor
            if name == reference:
                return node_server(port, probot_dir, script)
            kind, synchronous, *loop = name.split()
            source = args.baseline if kind == "baseline" else None
            return bot_server(port, where, synchronous, "asyncio" if loop else "auto", source)

        names = ["floor", reference, "bot NORMAL", "bot FULL"]
        if args.levers:
            names += ["bot NORMAL asyncio", "bot FULL asyncio"]
        if args.baseline:
            names += ["baseline NORMAL", "baseline FULL"]
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        loads = []
        for round_number in range(args.rounds):
            print(f"round {round_number + 1}", flush=True)
            for concurrency in args.concurrency:
                shift = round_number % len(names)  # rotate who goes first
                for name in names[shift:] + names[:shift]:
                    where = workdir / f"r{round_number}-c{concurrency}-{name.replace(' ', '-')}"
                    where.mkdir()
                    port = free_port()
                    figures = measure(name, start(name, port, where), port, concurrency, args)
                    results.setdefault((name, concurrency), []).append(figures)
                    loads.append(figures["load"])
    print(
        f"\nmedians of {args.rounds} rounds; 1-minute load average during the run "
        f"{min(loads):.1f}-{max(loads):.1f}; ratio = rate / the {reference} app's rate"
    )
    print(f"| server | concurrency | acks/s | p50 | p99 | x {reference} |")
    print("|---|---|---|---|---|---|")
    for concurrency in args.concurrency:
        base = statistics.median(r["rate"] for r in results[(reference, concurrency)])
        for name in names:
            runs = results[(name, concurrency)]
            rate = statistics.median(r["rate"] for r in runs)
            p50 = statistics.median(r["p50_ms"] for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            print(
                f"| {name} | {concurrency} | {rate:,.0f} | {p50:.1f} ms | {p99:.1f} ms "
                f"| {rate / base:.2f} |"
            )


if __name__ == "__main__":
    main()
