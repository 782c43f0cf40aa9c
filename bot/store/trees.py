"""Stored default-branch trees, one row per repository (see bot/github/trees.py).

The row holds the tree's sha and ETag, its blob paths (JSON), and whether a `push` made
it stale (with the tree sha the push announced, when it carried one).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.store.db import connect


@dataclass(frozen=True)
class TreeRow:
    repo: str
    sha: str
    etag: str | None
    paths: list[str]
    truncated: bool
    stale: bool
    wanted_sha: str | None
    blobs: dict[str, str] = field(default_factory=dict)  # path -> blob sha (migration 4)


class TreeStore:
    def __init__(self, db: Path | str, *, autocheckpoint: bool = True) -> None:
        self._conn = connect(db, autocheckpoint=autocheckpoint, check_same_thread=False)

    def close(self) -> None:
        self._conn.close()

    def get(self, repo: str) -> TreeRow | None:
        row = self._conn.execute(
            "SELECT repo, sha, etag, paths, truncated, stale, wanted_sha, blobs FROM repo_trees"
            " WHERE repo = ?",
            (repo,),
        ).fetchone()
        if row is None:
            return None
        return TreeRow(
            repo=row["repo"],
            sha=row["sha"],
            etag=row["etag"],
            paths=list(json.loads(row["paths"])),
            truncated=bool(row["truncated"]),
            stale=bool(row["stale"]),
            wanted_sha=row["wanted_sha"],
            blobs=dict(json.loads(row["blobs"])) if row["blobs"] else {},
        )

    def put(self, row: TreeRow) -> None:
        self._conn.execute(
            "INSERT INTO repo_trees (repo, sha, etag, paths, truncated, stale, wanted_sha,"
            " fetched_at, blobs) VALUES (?, ?, ?, ?, ?, 0, NULL, ?, ?) ON CONFLICT (repo) DO"
            " UPDATE SET sha=excluded.sha, etag=excluded.etag, paths=excluded.paths,"
            " truncated=excluded.truncated, stale=0, wanted_sha=NULL,"
            " fetched_at=excluded.fetched_at, blobs=excluded.blobs",
            (
                row.repo,
                row.sha,
                row.etag,
                json.dumps(row.paths),
                int(row.truncated),
                time.time(),
                json.dumps(row.blobs) if row.blobs else None,
            ),
        )

    def mark_stale(self, repo: str, wanted_sha: str | None) -> bool:
        """After a push: stale unless the stored tree already is `wanted_sha`."""
        cursor = self._conn.execute(
            "UPDATE repo_trees SET stale = 1, wanted_sha = ? WHERE repo = ?"
            " AND (? IS NULL OR sha != ?)",
            (wanted_sha, repo, wanted_sha, wanted_sha),
        )
        return cursor.rowcount > 0

    def mark_fresh(self, repo: str) -> None:
        self._conn.execute(
            "UPDATE repo_trees SET stale = 0, wanted_sha = NULL, fetched_at = ? WHERE repo = ?",
            (time.time(), repo),
        )
