"""`agent-dispatch candidates`: what to dispatch first, ranked by impact, with the reason."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from bot.cli.output import emit, emit_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "candidates",
        help="actionable issues with no open PR, not yet dispatched, ranked by impact",
    )
    parser.add_argument("--repo", help="only this repository (owner/name)")
    parser.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_candidates)


def _db_path(args: argparse.Namespace) -> Path:
    from bot.config.settings import Settings

    return Path(args.db) if getattr(args, "db", None) is not None else Settings().db


def _candidates(args: argparse.Namespace) -> int:
    # Imported here: every other command starts without loading the dashboard's queries.
    from bot.dashboard.candidates import rank
    from bot.store.dashboard import DashboardQueries

    queries = DashboardQueries(_db_path(args))
    try:
        facts = queries.candidate_facts(args.repo)
    finally:
        queries.close()
    ranked = rank(facts, now=datetime.now(UTC), limit=max(0, args.limit))
    if args.json:
        emit_json([c.as_json() for c in ranked])
        return 0
    if not ranked:
        emit(
            "no candidates: no open issue is triaged actionable without an open PR "
            "and not yet dispatched" + (f" in {args.repo}" if args.repo else "")
        )
        return 0
    for position, c in enumerate(ranked, 1):
        f = c.facts
        emit(f"{position:>2}. {f.repo}#{f.number}  impact {c.impact:.2f}  {f.title}")
        emit(f"    why: {c.reason}")
        emit(f"    verdict: {c.evidence}")
    return 0
