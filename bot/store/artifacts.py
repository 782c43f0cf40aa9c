"""Versioned prompt artifacts and the signed, expiring links that serve them.

Every rendered prompt is kept (a new version only when the text changes), in the
database by default or as files under a directory. Links carry an HMAC signature and
an expiry, so a link can be shared in Slack without exposing the other artifacts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel

from bot.store.db import connect
from bot.store.thread import AsyncStore

LINK_KEY_LABEL = b"agent-dispatch artifact links v1"


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
    def __init__(
        self, db: Path | str, directory: Path | None = None, *, autocheckpoint: bool = True
    ) -> None:
        self._conn = connect(db, check_same_thread=False, autocheckpoint=autocheckpoint)
        self._directory = directory

    def _file(self, repo: str, number: int, version: int) -> Path:
        assert self._directory is not None
        owner, name = repo.split("/", 1)
        return self._directory / owner / name / str(number) / f"{version}.md"

    def put(self, repo: str, number: int, text: str) -> ArtifactRef:
        """Store `text` as the next version, unless it equals the latest one."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        latest = self.latest(repo, number)
        if latest is not None and latest.sha256 == digest:
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
        return ref

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


class LinkSigner:
    """Signs artifact paths with a key derived from the webhook secret."""

    def __init__(self, secret: str, public_url: str) -> None:
        self._key = hmac.new(secret.encode(), LINK_KEY_LABEL, hashlib.sha256).digest()
        self._base = public_url.rstrip("/")

    def _signature(self, path: str, expires: int) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, ref: ArtifactRef, *, expires: float) -> str:
        stamp = int(expires)
        return f"{self._base}{ref.path}?expires={stamp}&sig={self._signature(ref.path, stamp)}"

    def valid(
        self, path: str, expires: str | None, signature: str | None, *, now: float | None = None
    ) -> bool:
        if not expires or not signature or not expires.isdigit():
            return False
        stamp = int(expires)
        if stamp < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self._signature(path, stamp), signature)
