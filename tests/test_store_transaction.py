"""The one transaction helper: BEGIN IMMEDIATE, COMMIT, or ROLLBACK on any exception."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.store.db import connect, transaction


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = connect(tmp_path / "t.sqlite3")
    conn.execute("CREATE TABLE t (x INTEGER)")
    return conn


def values(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]


def test_commits_when_the_block_ends(conn: sqlite3.Connection) -> None:
    with transaction(conn) as tx:
        tx.execute("INSERT INTO t VALUES (1)")
        assert conn.in_transaction
    assert not conn.in_transaction
    assert values(conn) == [1]


def test_an_early_return_commits(conn: sqlite3.Connection) -> None:
    def write() -> str:
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            return "early"

    assert write() == "early"
    assert values(conn) == [2]


def test_rolls_back_and_reraises_on_any_exception(conn: sqlite3.Connection) -> None:
    with pytest.raises(KeyError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (3)")
        raise KeyError("boom")
    assert not conn.in_transaction
    assert values(conn) == []


def test_nested_use_joins_the_outer_transaction(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (4)")
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (5)")
        assert conn.in_transaction  # the inner block did not commit
        raise ValueError
    assert values(conn) == []


def test_takes_the_write_lock_at_the_start(conn: sqlite3.Connection, tmp_path: Path) -> None:
    """IMMEDIATE: another writer is kept out from BEGIN on, not only from the first write."""
    other = sqlite3.connect(tmp_path / "t.sqlite3", timeout=0, isolation_level=None)
    with transaction(conn), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
