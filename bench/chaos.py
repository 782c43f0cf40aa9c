"""Fault injection, long form: prints `lost N, doubled N, 5xx N` and a table of the run.

    .venv/bin/python bench/chaos.py                 # 20 kills, 30% 5xx, 20% applied-then-502,
                                                    # kills aimed at Slack posts, 90 s Slack outage
    .venv/bin/python bench/chaos.py --outage 20     # a shorter run

`agent-dispatch serve` runs as a subprocess against the fake GitHub and fake Slack and is
SIGKILLed at random and at crash points (BOT_CRASHPOINTS), then restarted on the same
database. See tests/chaos.py for what is checked; the short form runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos import Plan, run  # noqa: E402

# Kills aimed just before and just after Slack posts, plus GitHub writes and group commits.
AIMED = "slack_post:0.5,slack_posted:0.5,github_write:0.02,github_written:0.02,group_commit:0.005"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--server-errors", type=float, default=0.3, help="GitHub 5xx share")
    parser.add_argument("--applied", type=float, default=0.2, help="applied-then-502 share")
    parser.add_argument("--outage", type=float, default=90.0, help="Slack outage, seconds")
    parser.add_argument("--issues", type=int, default=16)
    parser.add_argument("--deliveries", type=int, default=75)
    parser.add_argument("--malformed", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep the database and serve.log here")
    args = parser.parse_args()
    plan = Plan(
        issues=args.issues,
        deliveries=args.deliveries,
        malformed=args.malformed,
        kills=args.kills,
        server_errors=args.server_errors,
        applied=args.applied,
        slack_outage=args.outage,
        targeted=AIMED,
        kill_every=(3.0, 10.0),
        pace=0.1,
        settle_timeout=600.0,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(plan, workdir, log=lambda text: print(f"  {text}", flush=True)))
    rows = [
        ("kills (SIGKILL)", f"{result.kills} ({result.targeted_kills} at crash points)"),
        ("crash points hit", ", ".join(f"{k} {v}" for k, v in sorted(result.kills_at.items()))),
        ("GitHub 5xx / applied-then-502", f"{plan.server_errors:.0%} / {plan.applied:.0%}"),
        ("Slack outage", f"{plan.slack_outage:.0f} s"),
        ("deliveries sent (well-formed + malformed)", f"{args.deliveries} + {args.malformed}"),
        ("acknowledged / refused (4xx)", f"{result.acknowledged} / {result.refused}"),
        ("bot comments on GitHub", str(result.comments)),
        ("Slack messages", str(result.slack_messages)),
        ("lost", str(result.lost)),
        ("doubled", str(result.doubled)),
        ("5xx answers", str(result.server_errors)),
        ("dead letters of good deliveries", str(result.dead_good)),
        ("wall time", f"{result.seconds:.0f} s"),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for problem in result.problems:
        print(f"- {problem}")
    print(result.line())
    return 0 if (result.lost, result.doubled, result.server_errors) == (0, 0, 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
