"""Triage cost against the fake GitHub with 50 ms per request: requests and wall time.

Target (issue 6, issue 12): at most 6 GitHub requests per triage once the config and the
default branch's tree are cached, and under 1 s of wall time; issue 13: a triage whose
prompt quotes three repository files within 9 requests.
Usage: .venv/bin/python bench/triage.py [--latency 0.05] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.service import build_services  # noqa: E402
from bot.triage.job import TriageJob  # noqa: E402
from tests import prompt_cases  # noqa: E402
from tests.fakegithub import FakeGitHub  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
REPO = "huggingface/peft"


# A few real paths of peft's default branch: the tree code pointers are checked against.
PEFT_PATHS = ("src/peft/__init__.py", "src/peft/peft_model.py", "src/peft/tuners/lora.py")


def seed(fake: FakeGitHub) -> list[int]:
    for path in PEFT_PATHS:
        fake.set_file(REPO, path, "")
    export = json.loads((DATA / "peft.export.json").read_text())
    numbers = []
    for raw in export["open_issues"] + export["closed_issues"]:
        fake.add_issue(
            REPO,
            raw["number"],
            title=raw["title"],
            body=raw["body"],
            user=raw["author"] or "ghost",
            labels=raw["labels"],
        )
        for comment in raw["comments"]:
            fake.add_comment(
                REPO, raw["number"], comment["body"], user=comment["author"] or "ghost"
            )
        numbers.append(raw["number"])
    return numbers


async def measure(fake: FakeGitHub, latency: float, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = fake.settings(db=Path(tmp) / "bench.sqlite3")
        async with aiohttp.ClientSession() as session:
            services = build_services(settings, session)
            job = TriageJob(services)
            gh = await services.github.for_installation(1)
            numbers = seed(fake)
            fake.latency = latency
            rows = []
            for label, number in [("first (config not cached)", numbers[1])] + [
                ("cached", n) for n in numbers[:runs]
            ]:
                before = len(fake.requests)
                started = time.perf_counter()
                loaded = await services.configs.load(gh, REPO)
                await job.run(gh, REPO, number, loaded=loaded)
                elapsed = time.perf_counter() - started
                rows.append((label, number, len(fake.requests) - before, elapsed))
            for label, number, requests, elapsed in rows:
                print(
                    f"{label:<26} #{number:<5} {requests} GitHub requests  {elapsed * 1000:6.0f} ms"
                )
            cached = [r for r in rows if r[0] == "cached"]
            print(
                f"cached triage, {latency * 1000:.0f} ms per request: "
                f"max {max(r[2] for r in cached)} requests, "
                f"median {statistics.median(r[3] for r in cached) * 1000:.0f} ms, "
                f"max {max(r[3] for r in cached) * 1000:.0f} ms"
            )


async def measure_source(fake: FakeGitHub, latency: float) -> None:
    """The prompt's source context (issue 13): a LARS-style issue quoting three files.

    The config and the default branch's tree are cached first; the first triage fetches
    the three files and pyproject.toml, the second finds every blob in the cache.
    """
    fake.reset()
    repo, number = prompt_cases.REPO, prompt_cases.NUMBER
    prompt_cases.seed(fake, "review")
    issue = fake.issue(repo, number)
    issue["body"] += "\nLARS itself is in bitsandbytes/optim/lars.py.\n"
    with tempfile.TemporaryDirectory() as tmp:
        settings = fake.settings(db=Path(tmp) / "bench.sqlite3")
        async with aiohttp.ClientSession() as session:
            services = build_services(settings, session)
            job = TriageJob(services)
            gh = await services.github.for_installation(1)
            await services.github.bot_login()
            loaded = await services.configs.load(gh, repo)
            assert await services.trees.get(gh, repo) is not None
            fake.latency = latency
            for label in ("blobs not cached", "blobs cached"):
                before = len(fake.requests)
                started = time.perf_counter()
                outcome = await job.run(gh, repo, number, loaded=loaded)
                elapsed = time.perf_counter() - started
                made = fake.requests[before:]
                quoted = await services.artifacts.get(repo, number, outcome.artifact.version)
                files = {
                    line.split("@", 1)[0].strip("`")
                    for line in (quoted or "").splitlines()
                    if line.startswith("`") and "@" in line and ", lines " in line
                }
                print(
                    f"source context, tree cached, {label:<16} #{number} quotes {len(files)} files:"
                    f" {len(made)} GitHub requests  {elapsed * 1000:6.0f} ms"
                    "  ("
                    + ", ".join(sorted(f"{r.method} {r.api_path.rsplit('/', 1)[-1]}" for r in made))
                    + ")"
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with FakeGitHub() as fake:
        asyncio.run(measure(fake, args.latency, args.runs))
        asyncio.run(measure_source(fake, args.latency))


if __name__ == "__main__":
    main()
