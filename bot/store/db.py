"""SQLite connections, transactions and schema migrations: the engine specifics of the store.

Everything SQLite-shaped that more than one store needs lives here, so a second engine
replaces this module's roles (connect, transaction, migrate) rather than every store's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def connect(
    path: Path | str,
    *,
    synchronous: str = "NORMAL",
    check_same_thread: bool = True,
    autocheckpoint: bool = True,
    migrate: bool = True,
) -> sqlite3.Connection:
    """Open `path` in WAL mode so readers never block the inbox writer.

    `autocheckpoint=False` leaves WAL checkpoints (two fsyncs each) to the service's
    background checkpointer, so no commit on the event loop ever waits for one. The
    database is brought to the current schema first (`migrate=False` skips that, for
    tests that need today's release's schema).
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
    if migrate:
        from bot.store.schema import upgrade

        upgrade(conn)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One atomic unit: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any exception.

    IMMEDIATE takes the write lock up front, so a read-then-write never fails half-way on
    a lock another connection took meanwhile. Nested use joins the outer transaction.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def can_write(conn: sqlite3.Connection) -> None:
    """Take the write lock and let go (raises sqlite3.Error when the file is not writable)."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("ROLLBACK")
