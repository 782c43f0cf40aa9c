"""Versioned prompt artifacts and the signed, expiring links that serve them.

Every rendered prompt is kept (a new version only when the text changes), in the
database by default or as files under a directory. Links carry an HMAC signature and
an expiry, so a link can be shared in Slack without exposing the other artifacts.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel

from bot.store.db import connect
from bot.store.thread import AsyncStore


class ArtifactRef(BaseModel):
    repo: str
    number: int
    version: int
    sha256: str
    size: int
    created_at: float

    @property
    def path(self) -> str:
        owner, name = self.repo.split("/", 1)
        return f"/artifacts/{quote(owner)}/{quote(name)}/{self.number}/{self.version}.md"


class ArtifactStore:
    """Prompt versions; with `keep_versions` and `retention_seconds`, old ones are pruned
    as new ones arrive (an issue's latest version always stays)."""

    def __init__(
        self,
        db: Path | str,
        directory: Path | None = None,
        *,
        autocheckpoint: bool = True,
        keep_versions: int | None = None,
        retention_seconds: float | None = None,
    ) -> None:
        self._conn = connect(db, check_same_thread=False, autocheckpoint=autocheckpoint)
        self._directory = directory
        self._keep = keep_versions
        self._retention = retention_seconds or None

    def _file(self, repo: str, number: int, version: int) -> Path:
        assert self._directory is not None
        owner, name = repo.split("/", 1)
        return self._directory / owner / name / str(number) / f"{version}.md"

    def put(self, repo: str, number: int, text: str) -> ArtifactRef:
        """Store `text` as the next version, unless it equals the latest one."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        latest = self.latest(repo, number)
        if (
            latest is not None
            and latest.sha256 == digest
            and not self.revoked(repo, number, latest.version)
        ):
            return latest
        ref = ArtifactRef(
            repo=repo,
            number=number,
            version=(latest.version + 1) if latest else 1,
            sha256=digest,
            size=len(text.encode()),
            created_at=time.time(),
        )
        if self._directory is not None:
            target = self._file(repo, number, ref.version)
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(".tmp")
            temporary.write_text(text)
            os.replace(temporary, target)
        self._conn.execute(
            "INSERT INTO artifacts (repo, number, version, sha256, size, created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                repo,
                number,
                ref.version,
                digest,
                ref.size,
                ref.created_at,
                None if self._directory else text,
            ),
        )
        self.prune(repo, number, now=ref.created_at)
        return ref

    def prune(self, repo: str, number: int, *, now: float | None = None) -> int:
        """Drop versions past the retention rules; returns how many went."""
        at = time.time() if now is None else now
        doomed: list[tuple[str, int, int]] = []
        if self._keep is not None:
            doomed += self._conn.execute(
                "SELECT repo, number, version FROM artifacts WHERE repo = ? AND number = ?"
                " ORDER BY version DESC LIMIT -1 OFFSET ?",
                (repo, number, self._keep),
            ).fetchall()
        if self._retention is not None:
            doomed += self._conn.execute(
                "SELECT a.repo, a.number, a.version FROM artifacts a WHERE a.created_at < ?"
                " AND a.version < (SELECT MAX(b.version) FROM artifacts b"
                " WHERE b.repo = a.repo AND b.number = a.number)",
                (at - self._retention,),
            ).fetchall()
        keys = sorted({(str(r[0]), int(r[1]), int(r[2])) for r in doomed})
        self._conn.executemany(
            "DELETE FROM artifacts WHERE repo = ? AND number = ? AND version = ?", keys
        )
        if self._directory is not None:
            for repo_name, issue, version in keys:
                self._file(repo_name, issue, version).unlink(missing_ok=True)
        return len(keys)

    def revoke(self, repo: str, number: int | None = None, *, now: float | None = None) -> int:
        """Links to every version so far (of one issue, or of the repository) stop working;
        returns how many versions that covers. A later triage makes a new version."""
        at = time.time() if now is None else now
        self._conn.execute(
            "INSERT INTO artifact_revocations (repo, number, revoked_at) VALUES (?, ?, ?)",
            (repo, number, at),
        )
        row = self._conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE repo = ? AND (? IS NULL OR number = ?)",
            (repo, number, number),
        ).fetchone()
        return int(row[0])

    def revoked(self, repo: str, number: int, version: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM artifacts a JOIN artifact_revocations r ON r.repo = a.repo"
            " AND (r.number IS NULL OR r.number = a.number) AND a.created_at <= r.revoked_at"
            " WHERE a.repo = ? AND a.number = ? AND a.version = ? LIMIT 1",
            (repo, number, version),
        ).fetchone()
        return row is not None

    def latest(self, repo: str, number: int) -> ArtifactRef | None:
        row = self._conn.execute(
            "SELECT repo, number, version, sha256, size, created_at FROM artifacts WHERE repo=? AND number=?"
            " ORDER BY version DESC LIMIT 1",
            (repo, number),
        ).fetchone()
        return ArtifactRef(**dict(row)) if row else None

    def get(self, repo: str, number: int, version: int) -> str | None:
        row = self._conn.execute(
            "SELECT body FROM artifacts WHERE repo=? AND number=? AND version=?",
            (repo, number, version),
        ).fetchone()
        if row is None:
            return None
        if row["body"] is not None:
            text: str = row["body"]
            return text
        if self._directory is None:
            return None
        path = self._file(repo, number, version)
        return path.read_text() if path.exists() else None

    def list(
        self, repo: str | None = None, number: int | None = None, limit: int = 100
    ) -> list[ArtifactRef]:
        sql = "SELECT repo, number, version, sha256, size, created_at FROM artifacts"
        clauses: list[str] = []
        params: list[str | int] = []
        if repo:
            clauses.append("repo = ?")
            params.append(repo)
        if number is not None:
            clauses.append("number = ?")
            params.append(number)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, version DESC LIMIT ?"
        return [
            ArtifactRef(**dict(r)) for r in self._conn.execute(sql, (*params, limit)).fetchall()
        ]

    def close(self) -> None:
        self._conn.close()


class AsyncArtifactStore(AsyncStore[ArtifactStore]):
    """Artifacts for async code (see bot.store.thread)."""

    async def put(self, repo: str, number: int, text: str) -> ArtifactRef:
        return await self._run(self.sync.put, repo, number, text)

    async def latest(self, repo: str, number: int) -> ArtifactRef | None:
        return await self._run(self.sync.latest, repo, number)

    async def get(self, repo: str, number: int, version: int) -> str | None:
        return await self._run(self.sync.get, repo, number, version)

    async def revoked(self, repo: str, number: int, version: int) -> bool:
        return await self._run(self.sync.revoked, repo, number, version)
