"""`agent-dispatch candidates` over a 20,000-issue mirror, timed as a whole command.

    .venv/bin/python bench/candidates.py [--issues 20000] [--rounds 5] [--db PATH]

Seeds a database (tests/dashboard_seed.py: every issue triaged, a realistic mix of
verdicts, PRs, duplicates and dependencies) unless --db names one already seeded, then
runs the installed console script as a fresh process each round (interpreter start,
imports, query, ranking, output) and prints the wall times.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dashboard_seed import seed_bulk  # noqa: E402

COMMAND = Path(sys.executable).parent / "agent-dispatch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=20_000)
    parser.add_argument("--repos", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, help="reuse this seeded database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.sqlite3"
        if args.db is None or not db.exists():
            started = time.perf_counter()
            repos = tuple(f"octo-org/repo{n}" for n in range(args.repos))
            seed_bulk(db, repos=repos, per_repo=args.issues // args.repos)
            print(f"seeded {args.issues} issues in {time.perf_counter() - started:.1f} s")
        for flags in ([], ["--json", "--limit", "50"]):
            times = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                done = subprocess.run(
                    [str(COMMAND), "--db", str(db), "candidates", *flags],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times.append(time.perf_counter() - started)
            shown = " ".join(flags) or "(text, 10)"
            print(
                f"candidates {shown}: median {statistics.median(times) * 1000:.0f} ms,"
                f" max {max(times) * 1000:.0f} ms over {args.rounds} runs"
                f" ({len(done.stdout.splitlines())} lines of output)"
            )


if __name__ == "__main__":
    main()
