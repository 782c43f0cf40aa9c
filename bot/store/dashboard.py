"""Read-only queries for the candidate list and the dashboard pages.

They read the tables other stores own (mirror, triage records, dispatch runs, inbox,
outbox, artifacts); those stores create their tables, and `DashboardQueries` makes
sure they exist so a fresh or mirror-only database answers with empty pages.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.dashboard.candidates import CandidateFacts
from bot.delivery.inbox import SCHEMA as INBOX_SCHEMA
from bot.dispatch.planner import SCHEMA as RUNS_SCHEMA
from bot.dispatch.planner import parse_dependencies
from bot.notify.outbox import SCHEMA as OUTBOX_SCHEMA
from bot.store.artifacts import SCHEMA as ARTIFACTS_SCHEMA
from bot.store.db import connect
from bot.store.mirror import SCHEMA as MIRROR_SCHEMA
from bot.store.triage_records import SCHEMA as RECORDS_SCHEMA

# PR references that mean "this PR addresses the issue" (a bare mention does not).
ADDRESSING_KINDS = ("closing-keyword", "title", "branch")

_CANDIDATES = f"""
SELECT i.id, i.repo, i.number, i.title, i.url, i.labels, i.reaction_total, i.comment_count,
       i.created_at, t.decision
FROM triage_records t
JOIN mirror_issues i ON i.repo = t.repo AND i.number = t.number
WHERE t.verdict = 'actionable' AND i.is_pr = 0 AND i.state = 'open'
  AND (:repo IS NULL OR t.repo = :repo)
  AND NOT EXISTS (
      SELECT 1 FROM dispatch_items d
      WHERE d.repo = i.repo AND d.number = i.number AND d.status != 'refused')
  AND NOT EXISTS (
      SELECT 1 FROM mirror_refs r JOIN mirror_issues p ON p.id = r.source_id
      WHERE r.target_repo = i.repo AND r.target_number = i.number
        AND r.kind IN ({",".join(f"'{k}'" for k in ADDRESSING_KINDS)})
        AND p.is_pr = 1 AND p.state = 'open')
"""

# Issues marked duplicate of another: by the engine's verdict, or closed as duplicate /
# labelled Duplicate on GitHub while mentioning it.
_DUPLICATES = """
SELECT t.repo, json_extract(t.decision, '$.duplicate_of') AS target, t.number AS source
FROM triage_records t
WHERE t.verdict = 'duplicate' AND json_extract(t.decision, '$.duplicate_of') IS NOT NULL
  AND (:repo IS NULL OR t.repo = :repo)
UNION
SELECT r.target_repo, r.target_number, s.number
FROM mirror_issues s JOIN mirror_refs r ON r.source_id = s.id
WHERE s.is_pr = 0 AND r.kind = 'mention' AND r.target_repo = s.repo
  AND (:repo IS NULL OR s.repo = :repo)
  AND (s.state_reason = 'duplicate' OR EXISTS (
      SELECT 1 FROM mirror_labels l WHERE l.issue_id = s.id AND lower(l.name) = 'duplicate'))
"""

# Open issues that mention a candidate; their bodies say whether they wait for it.
_MENTIONED_BY_OPEN = """
SELECT r.target_number AS target, s.number AS source, s.body
FROM mirror_refs r JOIN mirror_issues s ON s.id = r.source_id
WHERE r.target_repo = ? AND r.kind = 'mention' AND s.repo = r.target_repo
  AND s.is_pr = 0 AND s.state = 'open'
"""


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _positive_signals(decision: dict[str, Any]) -> tuple[str, ...]:
    signals = sorted(
        (s for s in decision.get("signals") or [] if float(s.get("weight") or 0) > 0),
        key=lambda s: -float(s.get("weight") or 0),
    )
    return tuple(str(s.get("name")) for s in signals)


class DashboardQueries:
    """One connection; callers run it on a thread of its own (see bot/dashboard/app.py)."""

    def __init__(self, path: Path | str, *, check_same_thread: bool = True) -> None:
        self._conn = connect(path, check_same_thread=check_same_thread)
        for schema in (
            MIRROR_SCHEMA,
            RECORDS_SCHEMA,
            RUNS_SCHEMA,
            INBOX_SCHEMA,
            OUTBOX_SCHEMA,
            ARTIFACTS_SCHEMA,
        ):
            self._conn.executescript(schema)

    def close(self) -> None:
        self._conn.close()

    # -- candidates -------------------------------------------------------------------

    def candidate_facts(self, repo: str | None = None) -> list[CandidateFacts]:
        """Open, actionable, undispatched issues without an open PR, with their impact facts."""
        rows = self._conn.execute(_CANDIDATES, {"repo": repo}).fetchall()
        duplicates: dict[tuple[str, int], set[int]] = defaultdict(set)
        for r in self._conn.execute(_DUPLICATES, {"repo": repo}):
            duplicates[(r[0], int(r[1]))].add(int(r[2]))
        blocks = self._blocked_by(rows)
        facts: list[CandidateFacts] = []
        for r in rows:
            decision = json.loads(r["decision"])
            existing = decision.get("existing_prs") or []
            if any(pr.get("state") == "open" for pr in existing):
                continue  # the verdict itself saw an open PR (timeline cross-reference)
            key = (r["repo"], r["number"])
            facts.append(
                CandidateFacts(
                    repo=r["repo"],
                    number=r["number"],
                    title=r["title"],
                    url=r["url"],
                    labels=tuple(json.loads(r["labels"])),
                    reactions=r["reaction_total"],
                    comments=r["comment_count"],
                    created_at=_dt(r["created_at"]),
                    score=float(decision.get("score") or 0.0),
                    mode=str(decision.get("mode") or "fix"),
                    summary=str(decision.get("summary") or ""),
                    signals=_positive_signals(decision),
                    duplicates=tuple(sorted(duplicates.get(key, ()))),
                    blocks=tuple(sorted(blocks.get(key, ()))),
                )
            )
        return facts

    def _blocked_by(self, rows: Sequence[sqlite3.Row]) -> dict[tuple[str, int], set[int]]:
        """Candidate -> open issues whose body says 'depends on' / 'blocked by' it."""
        wanted: dict[str, set[int]] = defaultdict(set)
        for r in rows:
            wanted[r["repo"]].add(r["number"])
        found: dict[tuple[str, int], set[int]] = defaultdict(set)
        for repo, numbers in wanted.items():
            parsed: dict[int, list[int]] = {}
            for r in self._conn.execute(_MENTIONED_BY_OPEN, (repo,)):
                target, source = int(r["target"]), int(r["source"])
                if target not in numbers:
                    continue
                if source not in parsed:
                    parsed[source] = parse_dependencies(r["body"], number=source)
                if target in parsed[source]:
                    found[(repo, target)].add(source)
        return found
