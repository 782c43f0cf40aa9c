"""SQLite connections with the settings every store relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def connect(
    path: Path | str,
    *,
    synchronous: str = "NORMAL",
    check_same_thread: bool = True,
    autocheckpoint: bool = True,
) -> sqlite3.Connection:
    """Open `path` in WAL mode so readers never block the inbox writer.

    `autocheckpoint=False` leaves WAL checkpoints (two fsyncs each) to the service's
    background checkpointer, so no commit on the event loop ever waits for one.
    """
    conn = sqlite3.connect(
        str(path),
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,  # explicit BEGIN/COMMIT: we decide what is one transaction
        check_same_thread=check_same_thread,
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous.upper() == 'FULL' else 'NORMAL'}")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn
