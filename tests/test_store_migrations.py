"""Schema migrations: a database written by the release before migrations upgrades in place.

tests/fixtures/schema_ac31ac1.sql is `sqlite3 DB .dump` of a database that release
(commit ac31ac1) created and filled through its own stores: three deliveries, an action,
two artifact versions, a triage record, a dispatch notice and its reply, a two-issue
run, a window label, and a mirror of two issues and a PR with comments, timeline,
labels, signatures, references, the full-text index and a finished sync.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.delivery.inbox import Inbox
from bot.mirror.related import find_related
from bot.notify.outbox import Outbox
from bot.store.actions import ActionLog
from bot.store.artifacts import ArtifactStore
from bot.store.db import connect
from bot.store.inbox import InboxQueries
from bot.store.mirror import MirrorStore
from bot.store.runs import DispatchRuns
from bot.store.schema import LATEST, MIGRATIONS, Migration, SchemaTooNew, upgrade, version
from bot.store.triage_records import TriageRecords

FIXTURE = Path(__file__).parent / "fixtures" / "schema_ac31ac1.sql"
REPO = "octo/widgets"


def load_release_database(path: Path) -> Path:
    """The fixture as a database file, untouched by this release's code."""
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    return path


def schema_of(path: Path) -> set[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        return {(kind, name, " ".join(sql.split())) for kind, name, sql in rows}
    finally:
        conn.close()


@pytest.fixture
def release_db(tmp_path: Path) -> Path:
    return load_release_database(tmp_path / "release.sqlite3")


def test_the_fixture_is_a_database_before_migrations(release_db: Path) -> None:
    conn = sqlite3.connect(release_db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


def test_a_new_database_gets_exactly_the_release_schema(release_db: Path, tmp_path: Path) -> None:
    """Migration 1 is the release's schema: a fresh file and the release's file agree."""
    fresh = tmp_path / "fresh.sqlite3"
    conn = sqlite3.connect(fresh, isolation_level=None)
    assert upgrade(conn, MIGRATIONS[:1]) == 1
    conn.close()
    assert schema_of(fresh) == schema_of(release_db)


def test_the_release_database_upgrades_in_place_and_keeps_its_rows(release_db: Path) -> None:
    mirror = MirrorStore(release_db)
    assert version(mirror.conn) == LATEST

    issue = mirror.get_issue(REPO, 7)
    assert issue is not None
    assert issue.labels == ["bug", "agent-ready"]
    assert [c.body for c in issue.comments] == ["Same here, see #9"]
    assert [e.type for e in issue.timeline] == ["LabeledEvent"]
    related = find_related(mirror, issue)
    assert [r.number for r in related] == [9]  # full-text index and signatures survived
    assert mirror.sync_state(REPO) is not None
    mirror.close()

    actions = ActionLog(release_db)
    assert [a["kind"] for a in actions.list()] == ["create_comment"]
    artifacts = ArtifactStore(release_db)
    latest = artifacts.latest(REPO, 7)
    assert latest is not None and latest.version == 2
    assert artifacts.get(REPO, 7, 2) == "# Prompt for #7, second version\n"
    records = TriageRecords(release_db)
    record = records.latest(REPO, 7)
    assert record is not None and record.comment_id == 1001
    outbox = Outbox(release_db)
    assert outbox.thread_key_for(REPO, 7) == "dispatch:octo/widgets#7:1"
    assert outbox.counts()["pending"] == 2
    runs = DispatchRuns(release_db)
    [run] = runs.runs_for_issue(REPO, 9)
    assert (run.key, run.numbers("dispatched"), run.numbers("queued")) == ("comment:55", [7], [9])
    assert runs.window_due_in(REPO, window_seconds=0, now=2e9) == 0.0
    queries = InboxQueries(release_db)
    assert [d["status"] for d in queries.recent()] == ["pending", "done", "done"]
    for store in (actions, artifacts, records, outbox, runs, queries):
        store.close()


async def test_the_upgraded_inbox_works_on(release_db: Path) -> None:
    inbox = Inbox(release_db)
    try:
        [claimed] = await inbox.claim()
        assert (claimed.id, claimed.subject) == ("delivery-2", "octo/widgets#9")
        assert (await inbox.counts())["running"] == 1
    finally:
        await inbox.close()


def test_upgrading_twice_changes_nothing(release_db: Path) -> None:
    connect(release_db).close()
    before = schema_of(release_db)
    conn = connect(release_db)
    assert upgrade(conn) == LATEST
    conn.close()
    assert schema_of(release_db) == before


def test_a_partial_release_database_is_completed(tmp_path: Path) -> None:
    """The release created tables as stores were opened: a CLI-only file has some of them."""
    path = tmp_path / "cli-only.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE actions (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL"
        " NOT NULL, target TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,"
        " payload TEXT NOT NULL, idempotency_key TEXT UNIQUE)"
    )
    conn.execute(
        "INSERT INTO actions (created_at, target, kind, subject, payload)"
        " VALUES (1, 'github', 'add_labels', 'octo/widgets#1', '{}')"
    )
    conn.commit()
    conn.close()
    actions = ActionLog(path)
    assert len(actions.list()) == 1
    actions.close()
    assert MirrorStore(path).list_issues(None) == []


def test_later_migrations_run_in_order_once(tmp_path: Path) -> None:
    later = (
        *MIGRATIONS,
        Migration(LATEST + 1, "a column", "ALTER TABLE actions ADD COLUMN note TEXT;"),
        Migration(LATEST + 2, "a default", "UPDATE actions SET note = 'old';"),
    )
    path = load_release_database(tmp_path / "release.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    assert upgrade(conn, later) == LATEST + 2
    assert upgrade(conn, later) == LATEST + 2  # nothing runs twice (ADD COLUMN would fail)
    assert conn.execute("SELECT note FROM actions").fetchall() == [("old",)]
    conn.close()


def test_a_failing_migration_leaves_the_database_as_it_was(release_db: Path) -> None:
    broken = (*MIGRATIONS, Migration(LATEST + 1, "broken", "DROP TABLE actions;\nNOT SQL;"))
    conn = sqlite3.connect(release_db, isolation_level=None)
    with pytest.raises(sqlite3.Error):
        upgrade(conn, broken)
    assert version(conn) == 0
    assert conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 1
    conn.close()


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew):
        connect(path)
