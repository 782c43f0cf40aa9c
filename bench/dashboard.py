"""Server-side time of the dashboard's Issues page with 1,000 triaged issues on it.

    .venv/bin/python bench/dashboard.py [--issues 20000] [--size 1000] [--rounds 20]

Seeds a database (tests/dashboard_seed.py, every issue triaged), starts the whole
service on loopback (dry-run, the signed-in user an operator, so no GitHub is asked),
and times GET /ui/issues?size=1000 from request to last byte, plus the query and the
template rendering alone. Also times the Candidates and Overview pages.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.settings import Settings  # noqa: E402
from bot.dashboard.auth import SESSION_COOKIE, SessionSigner  # noqa: E402
from bot.service import create_app  # noqa: E402
from bot.store.dashboard import DashboardQueries  # noqa: E402
from tests.dashboard_seed import seed_bulk  # noqa: E402

SECRET = "bench-webhook-secret"
LOGIN = "bench-operator"


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"{name}: median {statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms,"
        f" max {ordered[-1] * 1000:.0f} ms over {len(times)} requests"
    )


async def measure(db: Path, size: int, rounds: int) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        db=db,
        webhook_secret=SECRET,
        operators=LOGIN,
        redelivery_interval_minutes=0,
    )
    runner = web.AppRunner(await create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    _, token = SessionSigner(SECRET).new_session(LOGIN)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(cookies={SESSION_COOKIE: token}) as client:
            pages = {
                f"issues, {size} a page": f"/ui/issues?size={size}",
                "issues, 1,000 actionable": f"/ui/issues?size={size}&verdict=actionable",
                "candidates (top 25)": "/ui/candidates",
                "overview": "/ui/",
            }
            for name, path in pages.items():
                times = []
                for attempt in range(rounds + 2):
                    started = time.perf_counter()
                    async with client.get(base + path) as response:
                        body = await response.read()
                        assert response.status == 200, (response.status, body[:200])
                    if attempt >= 2:  # two warm-up requests
                        times.append(time.perf_counter() - started)
                rows = f", {body.count(b'<tr>') - 1} rows" if "issues" in name else ""
                print(summary(f"GET {name}", times) + f" ({len(body) // 1024} KB{rows})")
    finally:
        await runner.cleanup()


def parts(db: Path, size: int, rounds: int) -> None:
    """The query and the rendering alone, without HTTP."""
    from bot.dashboard.app import VERDICTS, _templates

    queries = DashboardQueries(db)
    repos = queries.repos()
    templates = _templates().get_template("issues.html.j2")
    query_times, choice_times, render_times = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        rows, total = queries.issues(repos, limit=size)
        query_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        choices = queries.filter_choices(repos)
        choice_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        templates.render(
            prefix="/ui",
            path="/ui/issues",
            login=LOGIN,
            operator=True,
            csrf="x",
            rows=rows,
            total=total,
            page=1,
            size=size,
            pages=1,
            repo=None,
            repos=repos,
            filters=dict.fromkeys(("verdict", "mode", "hardware", "label")),
            choices=choices | {"verdict": list(VERDICTS)},
        )
        render_times.append(time.perf_counter() - started)
    queries.close()
    print(summary("  issues query alone", query_times))
    print(summary("  filter choices (cached for a minute by the page)", choice_times))
    print(summary("  issues template alone", render_times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        started = time.perf_counter()
        seed_bulk(db, repos=("octo-org/widgets", "octo-org/gadgets"), per_repo=args.issues // 2)
        print(f"seeded {args.issues} issues in {time.perf_counter() - started:.1f} s")
        asyncio.run(measure(db, args.size, args.rounds))
        parts(db, args.size, args.rounds)


if __name__ == "__main__":
    main()
