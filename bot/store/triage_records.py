"""The latest triage of each issue: what the dispatch step and re-triage triggers read."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel

from bot.models import TriageDecision
from bot.store.db import connect
from bot.store.thread import AsyncStore


class TriageRecord(BaseModel):
    repo: str
    number: int
    decision: TriageDecision
    artifact_version: int | None
    comment_id: int | None
    updated_at: float


class TriageRecords:
    def __init__(self, db: Path | str, *, autocheckpoint: bool = True) -> None:
        self._conn = connect(db, check_same_thread=False, autocheckpoint=autocheckpoint)

    def save(
        self, decision: TriageDecision, *, artifact_version: int | None, comment_id: int | None
    ) -> None:
        self._conn.execute(
            "INSERT INTO triage_records (repo, number, verdict, decision, artifact_version, comment_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo, number) DO UPDATE SET verdict=excluded.verdict,"
            " decision=excluded.decision, artifact_version=excluded.artifact_version,"
            " comment_id=COALESCE(excluded.comment_id, triage_records.comment_id), updated_at=excluded.updated_at",
            (
                decision.repo,
                decision.number,
                decision.verdict,
                decision.model_dump_json(),
                artifact_version,
                comment_id,
                time.time(),
            ),
        )

    def latest(self, repo: str, number: int) -> TriageRecord | None:
        row = self._conn.execute(
            "SELECT * FROM triage_records WHERE repo=? AND number=?", (repo, number)
        ).fetchone()
        if row is None:
            return None
        return TriageRecord(
            repo=row["repo"],
            number=row["number"],
            decision=TriageDecision.model_validate(json.loads(row["decision"])),
            artifact_version=row["artifact_version"],
            comment_id=row["comment_id"],
            updated_at=row["updated_at"],
        )

    def close(self) -> None:
        self._conn.close()


class AsyncTriageRecords(AsyncStore[TriageRecords]):
    """Triage records for async code (see bot.store.thread)."""

    async def save(
        self, decision: TriageDecision, *, artifact_version: int | None, comment_id: int | None
    ) -> None:
        await self._run(
            self.sync.save, decision, artifact_version=artifact_version, comment_id=comment_id
        )

    async def latest(self, repo: str, number: int) -> TriageRecord | None:
        return await self._run(self.sync.latest, repo, number)
