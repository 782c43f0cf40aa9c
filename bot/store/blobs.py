"""File texts of the default branch, keyed by git blob sha (or tree sha and path).

Both keys name fixed content, so an entry never goes stale: a file whose blob is
unchanged is never fetched again. The table is created by migration 3 (bot/store/schema.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from bot.store.db import connect
from bot.store.thread import AsyncStore

CHUNK = 500  # keys per query (SQLite's bound-parameter limit is far above)
MAX_TEXT_CHARS = 1_000_000


class BlobTexts:
    def __init__(self, db: Path | str, *, autocheckpoint: bool = True) -> None:
        self._conn = connect(db, check_same_thread=False, autocheckpoint=autocheckpoint)

    def close(self) -> None:
        self._conn.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT key, text FROM blob_texts WHERE key IN ({marks})", chunk
            ).fetchall()
            found.update((row["key"], row["text"]) for row in rows)
        return found

    def put(self, keys: Sequence[str], text: str) -> None:
        """Store `text` under each key (its blob sha, and the tree sha and path)."""
        if len(text) > MAX_TEXT_CHARS:
            return
        now = time.time()
        self._conn.executemany(
            "INSERT INTO blob_texts (key, text, used_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET used_at = excluded.used_at",
            [(key, text, now) for key in dict.fromkeys(keys) if key],
        )


class AsyncBlobTexts(AsyncStore[BlobTexts]):
    """Blob texts for async code (see bot.store.thread)."""

    async def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        return await self._run(self.sync.get_many, keys)

    async def put(self, keys: Sequence[str], text: str) -> None:
        await self._run(self.sync.put, keys, text)
