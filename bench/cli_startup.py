"""Whole-command wall time of the CLI: `--help`, and `issues show|related|search` on a
20,000-issue mirror (the corpus of bench/mirror_bench.py), each as a fresh process the
way a user runs it. Prints the median and the best of N runs per command, and the
modules a command imports.

    .venv/bin/python bench/cli_startup.py                 # 20,000 issues, 9 runs each
    .venv/bin/python bench/cli_startup.py --issues 2000 --runs 5

Targets (issue 18): `--help` under 150 ms; `issues show|related|search` under 300 ms.
The mirror is built once into a temporary directory (about a minute for 20,000).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from mirror_bench import generate_issues, write_jsonl  # noqa: E402

TARGETS_MS = {"--help": 150, "issues": 300}


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(argv: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each run (CPU: user + system, the figure that holds
    on a busy machine, where wall time includes waiting for a core)."""
    subprocess.run(argv, stdout=subprocess.DEVNULL, env=env)  # writes the .pyc files
    walls, cpus = [], []
    for _ in range(runs):
        cpu, started = cpu_seconds(), time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((cpu_seconds() - cpu) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()}")
    return walls, cpus


def imported_modules(argv: list[str]) -> int:
    code = (
        "import sys; sys.argv = ['agent-dispatch', *sys.argv[1:]]\n"
        "from bot.cli.main import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(sys.argv[1:])\n"
        "    except SystemExit: pass\n"
        "print(sum(1 for m in sys.modules if m.startswith('bot') or '.' not in m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv[1:]], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    tool = str(Path(sys.executable).parent / "agent-dispatch")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "mirror.sqlite3"
        items, _ = generate_issues(args.issues)
        write_jsonl(items, Path(tmp) / "issues.jsonl")
        started = time.perf_counter()
        subprocess.run(
            [tool, "--db", str(db), "issues", "import", str(Path(tmp) / "issues.jsonl")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"mirror: {args.issues} issues imported in {time.perf_counter() - started:.1f} s")
        number = str(args.issues // 2)
        commands = {
            "--help": [tool, "--help"],
            "issues show N": [tool, "--db", str(db), "issues", "show", number],
            "issues related N": [tool, "--db", str(db), "issues", "related", number],
            "issues search": [tool, "--db", str(db), "issues", "search", "CUDA out of memory"],
            "triage --offline N": [tool, "--db", str(db), "triage", "--offline", number],
        }
        # As a user runs it: byte-code caches written (some shells set this variable).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(
            f"{'command':<22} {'wall median':>11} {'wall best':>9} {'cpu median':>10} "
            f"{'target':>6} {'modules':>7}"
        )
        for name, argv in commands.items():
            walls, cpus = timed(argv, args.runs, env)
            target = TARGETS_MS.get(name.split()[0], "")
            print(
                f"{name:<22} {statistics.median(walls):>9.0f}ms {min(walls):>7.0f}ms "
                f"{statistics.median(cpus):>8.0f}ms {target!s:>6} {imported_modules(argv):>7}"
            )


if __name__ == "__main__":
    main()
