"""Read-only queries for the candidate list and the dashboard pages.

They read the tables other stores own (mirror, triage records, dispatch runs, inbox,
outbox, artifacts); opening the database brings it to the current schema, so a fresh
or mirror-only database answers with empty pages.
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
from bot.dispatch.planner import parse_dependencies
from bot.store.db import connect

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

    # -- overview -------------------------------------------------------------------

    def repos(self) -> list[str]:
        """Every repository the database knows of (mirrored, triaged or dispatched)."""
        rows = self._conn.execute(
            "SELECT repo FROM triage_records UNION SELECT repo FROM mirror_issues"
            " UNION SELECT repo FROM dispatch_runs ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def verdict_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for r in self._conn.execute(
            "SELECT repo, verdict, COUNT(*) FROM triage_records GROUP BY repo, verdict"
        ):
            counts[r[0]][r[1]] = r[2]
        return dict(counts)

    def inbox_summary(self) -> dict[str, Any]:
        counts = {
            r[0]: r[1]
            for r in self._conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        }
        oldest = self._conn.execute(
            "SELECT MIN(received_at) FROM deliveries WHERE status IN ('pending', 'failed')"
        ).fetchone()[0]
        return {"counts": counts, "oldest_pending": oldest}

    def outbox_counts(self) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self._conn.execute(
                "SELECT status, COUNT(*) FROM outbox_messages GROUP BY status"
            )
        }

    def deliveries_per_hour(self, *, now: float, hours: int = 24) -> list[int]:
        """Deliveries received in each of the last `hours` hours, oldest hour first."""
        start = now - hours * 3600
        buckets = [0] * hours
        for r in self._conn.execute(
            "SELECT CAST((received_at - ?) / 3600 AS INTEGER) AS h, COUNT(*) FROM deliveries"
            " WHERE received_at >= ? AND received_at < ? GROUP BY h",
            (start, start, now),
        ):
            if 0 <= r[0] < hours:
                buckets[r[0]] = r[1]
        return buckets

    # -- issues ---------------------------------------------------------------------

    def issues(
        self,
        repos: Sequence[str],
        *,
        verdict: str | None = None,
        mode: str | None = None,
        hardware: str | None = None,
        label: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Triaged issues of `repos` (newest triage first) and how many match in all."""
        if not repos:
            return [], 0
        where = [f"t.repo IN ({','.join('?' * len(repos))})"]
        params: list[Any] = list(repos)
        if verdict:
            where.append("t.verdict = ?")
            params.append(verdict)
        if mode:
            where.append("json_extract(t.decision, '$.mode') = ?")
            params.append(mode)
        if hardware:
            where.append(
                "EXISTS (SELECT 1 FROM json_each(t.decision, '$.hardware') h WHERE h.value = ?)"
            )
            params.append(hardware)
        if label:
            where.append(
                "EXISTS (SELECT 1 FROM mirror_labels l WHERE l.issue_id = i.id AND l.name = ?)"
            )
            params.append(label)
        scope = (
            "FROM triage_records t LEFT JOIN mirror_issues i"
            f" ON i.repo = t.repo AND i.number = t.number WHERE {' AND '.join(where)}"
        )
        total = self._conn.execute(f"SELECT COUNT(*) {scope}", params).fetchone()[0]
        rows = self._conn.execute(
            "SELECT t.repo, t.number, t.verdict, t.updated_at, t.artifact_version,"
            " json_extract(t.decision, '$.score') AS score,"
            " json_extract(t.decision, '$.mode') AS mode,"
            " json_extract(t.decision, '$.hardware') AS hardware,"
            " i.title, i.state, i.labels, i.url"
            f" {scope} ORDER BY t.updated_at DESC, t.repo, t.number LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [
            {
                "repo": r["repo"],
                "number": r["number"],
                "verdict": r["verdict"],
                "updated_at": r["updated_at"],
                "versions": r["artifact_version"],
                "score": r["score"],
                "mode": r["mode"],
                "hardware": json.loads(r["hardware"] or "[]"),
                "title": r["title"] or "",
                "state": r["state"],
                "labels": json.loads(r["labels"] or "[]"),
                "url": r["url"],
            }
            for r in rows
        ], total

    def filter_choices(self, repos: Sequence[str]) -> dict[str, list[str]]:
        """The values the issue filters offer (modes, hardware, labels seen in `repos`)."""
        if not repos:
            return {"mode": [], "hardware": [], "label": []}
        marks = ",".join("?" * len(repos))
        modes = self._conn.execute(
            f"SELECT DISTINCT json_extract(decision, '$.mode') FROM triage_records"
            f" WHERE repo IN ({marks}) ORDER BY 1",
            list(repos),
        ).fetchall()
        hardware = self._conn.execute(
            f"SELECT DISTINCT h.value FROM triage_records t, json_each(t.decision, '$.hardware') h"
            f" WHERE t.repo IN ({marks}) ORDER BY 1",
            list(repos),
        ).fetchall()
        labels = self._conn.execute(
            f"SELECT name FROM mirror_labels WHERE repo IN ({marks})"
            " GROUP BY name ORDER BY COUNT(*) DESC, name LIMIT 200",
            list(repos),
        ).fetchall()
        return {
            "mode": [r[0] for r in modes if r[0]],
            "hardware": [r[0] for r in hardware if r[0]],
            "label": sorted(r[0] for r in labels),
        }

    def issue_detail(self, repo: str, number: int) -> dict[str, Any] | None:
        """The triage record, the mirrored issue, the comment as posted and prompt versions."""
        record = self._conn.execute(
            "SELECT * FROM triage_records WHERE repo = ? AND number = ?", (repo, number)
        ).fetchone()
        if record is None:
            return None
        issue = self._conn.execute(
            "SELECT id, title, state, url, labels FROM mirror_issues WHERE repo = ? AND number = ?",
            (repo, number),
        ).fetchone()
        comment = None
        if record["comment_id"] is not None:
            row = self._conn.execute(
                "SELECT body, updated_at, created_at, url FROM mirror_comments WHERE comment_id = ?",
                (record["comment_id"],),
            ).fetchone()
            comment = dict(row) if row else None
        versions = self._conn.execute(
            "SELECT version, sha256, size, created_at FROM artifacts"
            " WHERE repo = ? AND number = ? ORDER BY version",
            (repo, number),
        ).fetchall()
        return {
            "repo": repo,
            "number": number,
            "verdict": record["verdict"],
            "decision": json.loads(record["decision"]),
            "updated_at": record["updated_at"],
            "comment_id": record["comment_id"],
            "comment": comment,
            "title": issue["title"] if issue else "",
            "state": issue["state"] if issue else None,
            "url": issue["url"] if issue else None,
            "labels": json.loads(issue["labels"]) if issue else [],
            "versions": [dict(v) for v in versions],
        }

    # -- dispatch runs --------------------------------------------------------------

    def runs(self, repos: Sequence[str], *, limit: int = 50) -> list[dict[str, Any]]:
        """Recent runs of `repos` with their items and the PRs that address each item."""
        if not repos:
            return []
        marks = ",".join("?" * len(repos))
        runs = self._conn.execute(
            f"SELECT * FROM dispatch_runs WHERE repo IN ({marks}) ORDER BY id DESC LIMIT ?",
            (*repos, limit),
        ).fetchall()
        if not runs:
            return []
        ids = [r["id"] for r in runs]
        items: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in self._conn.execute(
            f"SELECT * FROM dispatch_items WHERE run_id IN ({','.join('?' * len(ids))})"
            " ORDER BY run_id, position",
            ids,
        ):
            items[r["run_id"]].append(dict(r) | {"depends_on": json.loads(r["depends_on"])})
        prs = self._prs_for([(i["repo"], i["number"]) for group in items.values() for i in group])
        return [
            dict(run)
            | {
                "items": [
                    item | {"prs": prs.get((item["repo"], item["number"]), [])}
                    for item in items.get(run["id"], [])
                ]
            }
            for run in runs
        ]

    def _prs_for(self, issues: Sequence[tuple[str, int]]) -> dict[tuple[str, int], list[Any]]:
        found: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for repo, number in dict.fromkeys(issues):
            for r in self._conn.execute(
                "SELECT DISTINCT p.number, p.state, p.merged, p.created_at, p.closed_at, p.url"
                " FROM mirror_refs r JOIN mirror_issues p ON p.id = r.source_id"
                " WHERE r.target_repo = ? AND r.target_number = ? AND p.is_pr = 1"
                f" AND r.kind IN ({','.join('?' * len(ADDRESSING_KINDS))}) ORDER BY p.number",
                (repo, number, *ADDRESSING_KINDS),
            ):
                found[(repo, number)].append(dict(r) | {"created": _dt(r["created_at"])})
        return found
