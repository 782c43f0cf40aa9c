"""The bot database's schema: one ordered list of migrations, keyed on `PRAGMA user_version`.

Version 0 is a database written by the release before migrations (ac31ac1), whose stores
created their tables with `CREATE TABLE IF NOT EXISTS` as they were opened: it may hold
any subset of the tables of migration 1. Migration 1 is exactly that release's schema,
so it completes such a database without touching its rows, and a new file gets it whole.

To change the schema, append a migration; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bot.store.db import transaction


class SchemaTooNew(RuntimeError):
    """The database was written by a newer release than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    script: str

    def statements(self) -> list[str]:
        """The script cut into statements (a script run whole would commit on its own)."""
        found: list[str] = []
        pending = ""
        for line in self.script.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                found.append(pending.strip())
                pending = ""
        if pending.strip():
            raise ValueError(f"migration {self.version}: incomplete statement {pending!r}")
        return found


RELEASE_AC31AC1 = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,            -- X-GitHub-Delivery
    event TEXT NOT NULL,
    action TEXT,
    installation_id INTEGER,
    repo TEXT,
    subject TEXT,                       -- owner/name#N: deliveries about one issue run one at a time
    payload BLOB NOT NULL,
    received_at REAL NOT NULL,
    not_before REAL NOT NULL,           -- debounce and retry backoff
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_ready ON deliveries (status, not_before, seq);
CREATE INDEX IF NOT EXISTS deliveries_subject ON deliveries (subject, status);

CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    target TEXT NOT NULL,        -- github | slack
    kind TEXT NOT NULL,          -- e.g. create_comment, add_labels, chat.postMessage
    subject TEXT NOT NULL,       -- owner/name#N or a channel
    payload TEXT NOT NULL,
    idempotency_key TEXT UNIQUE
);

CREATE TABLE IF NOT EXISTS artifacts (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    body TEXT,                 -- NULL when the directory store holds the text
    PRIMARY KEY (repo, number, version)
);

CREATE TABLE IF NOT EXISTS triage_records (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    decision TEXT NOT NULL,
    artifact_version INTEGER,
    comment_id INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (repo, number)
);

CREATE TABLE IF NOT EXISTS outbox_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,       -- chosen by the caller: one notification per key, ever
    kind TEXT NOT NULL,             -- dispatch | batch_plan | reply
    repo TEXT,
    channel TEXT,                   -- as requested; NULL: the service's default channel
    parent_key TEXT,                -- post into the thread of this message
    payload TEXT NOT NULL,          -- {"text": ..., "blocks": [...]}
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL,
    slack_channel TEXT,             -- the channel id Slack answered with
    slack_ts TEXT,
    thread_ts TEXT                  -- root of the thread this message is in (own ts when top-level)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox_messages (status, not_before, id);
CREATE INDEX IF NOT EXISTS outbox_parent ON outbox_messages (parent_key);
CREATE TABLE IF NOT EXISTS outbox_subjects (
    message_id INTEGER NOT NULL REFERENCES outbox_messages(id) ON DELETE CASCADE,
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    PRIMARY KEY (message_id, repo, number)
);
CREATE INDEX IF NOT EXISTS outbox_subjects_issue ON outbox_subjects (repo, number);

CREATE TABLE IF NOT EXISTS dispatch_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    key TEXT UNIQUE,                -- the caller's idempotency key (e.g. the comment's id)
    source TEXT NOT NULL,           -- command | label | window
    requested_by TEXT,
    max_in_flight INTEGER NOT NULL,
    notice_key TEXT,                -- outbox key of the Slack message about this run
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dispatch_items (
    run_id INTEGER NOT NULL REFERENCES dispatch_runs(id) ON DELETE CASCADE,
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    position INTEGER NOT NULL,
    wave INTEGER,                   -- NULL when refused
    depends_on TEXT NOT NULL,       -- JSON list of batch-internal dependencies
    status TEXT NOT NULL,           -- queued | dispatched | done | refused
    reason TEXT,
    outcome TEXT,                   -- merged | closed (done only)
    pr_number INTEGER,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, number)
);
CREATE INDEX IF NOT EXISTS dispatch_items_issue ON dispatch_items (repo, number, status);
CREATE INDEX IF NOT EXISTS dispatch_items_status ON dispatch_items (repo, status);
CREATE TABLE IF NOT EXISTS dispatch_window (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    requested_by TEXT,
    labeled_at REAL NOT NULL,
    PRIMARY KEY (repo, number)
);

CREATE TABLE IF NOT EXISTS mirror_issues (
    id INTEGER PRIMARY KEY,
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    is_pr INTEGER NOT NULL DEFAULT 0,
    title TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'open',
    state_reason TEXT,
    merged INTEGER,
    head_ref TEXT,
    author TEXT,
    author_association TEXT,
    created_at TEXT,
    updated_at TEXT,
    closed_at TEXT,
    assignees TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '[]',
    reactions TEXT NOT NULL DEFAULT '{}',
    reaction_total INTEGER NOT NULL DEFAULT 0,
    comment_count INTEGER NOT NULL DEFAULT 0,
    url TEXT,
    UNIQUE (repo, number)
);
CREATE INDEX IF NOT EXISTS mirror_issues_repo_updated
    ON mirror_issues (repo, is_pr, state, updated_at);
CREATE TABLE IF NOT EXISTS mirror_comments (
    issue_id INTEGER NOT NULL REFERENCES mirror_issues (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    comment_id INTEGER,
    author TEXT,
    author_association TEXT,
    author_is_bot INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL DEFAULT '',
    created_at TEXT,
    updated_at TEXT,
    reactions TEXT NOT NULL DEFAULT '{}',
    url TEXT,
    PRIMARY KEY (issue_id, position)
);
CREATE INDEX IF NOT EXISTS mirror_comments_id ON mirror_comments (comment_id);
CREATE TABLE IF NOT EXISTS mirror_timeline (
    issue_id INTEGER NOT NULL REFERENCES mirror_issues (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (issue_id, position)
);
CREATE TABLE IF NOT EXISTS mirror_labels (
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    issue_id INTEGER NOT NULL REFERENCES mirror_issues (id) ON DELETE CASCADE,
    PRIMARY KEY (repo, name, issue_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mirror_labels_issue ON mirror_labels (issue_id);
CREATE TABLE IF NOT EXISTS mirror_sigs (
    repo TEXT NOT NULL,
    sig TEXT NOT NULL,
    issue_id INTEGER NOT NULL REFERENCES mirror_issues (id) ON DELETE CASCADE,
    PRIMARY KEY (repo, sig, issue_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mirror_sigs_issue ON mirror_sigs (issue_id);
CREATE TABLE IF NOT EXISTS mirror_refs (
    source_id INTEGER NOT NULL REFERENCES mirror_issues (id) ON DELETE CASCADE,
    target_repo TEXT NOT NULL,
    target_number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (target_repo, target_number, kind, source_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mirror_refs_source ON mirror_refs (source_id);
CREATE VIRTUAL TABLE IF NOT EXISTS mirror_fts USING fts5 (
    title, body, comments,
    tokenize = "unicode61 remove_diacritics 0 tokenchars '_'"
);
CREATE VIRTUAL TABLE IF NOT EXISTS mirror_fts_vocab USING fts5vocab (mirror_fts, 'row');
CREATE TABLE IF NOT EXISTS mirror_sync (
    repo TEXT PRIMARY KEY,
    cursor TEXT,
    since TEXT,
    fetched INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    completed_at TEXT
);
"""

REPO_TREES = """
CREATE TABLE IF NOT EXISTS repo_trees (
    repo TEXT PRIMARY KEY,
    sha TEXT NOT NULL,
    etag TEXT,
    paths TEXT NOT NULL,
    truncated INTEGER NOT NULL DEFAULT 0,
    stale INTEGER NOT NULL DEFAULT 0,
    wanted_sha TEXT,
    fetched_at REAL NOT NULL
);
"""

BLOB_TEXTS = """
CREATE TABLE IF NOT EXISTS blob_texts (
    key TEXT PRIMARY KEY,               -- a git blob sha, or "<tree sha>:<path>"
    text TEXT NOT NULL,
    used_at REAL NOT NULL
);
"""

ARTIFACT_REVOCATIONS = """
CREATE INDEX IF NOT EXISTS artifacts_created ON artifacts (created_at);
-- Links to versions created up to `revoked_at` stop working (number NULL: every issue).
CREATE TABLE IF NOT EXISTS artifact_revocations (
    repo TEXT NOT NULL,
    number INTEGER,
    revoked_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS artifact_revocations_repo ON artifact_revocations (repo, number);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "tables of release ac31ac1 (inbox, actions, artifacts, triage records,"
        " outbox, dispatch runs, mirror)",
        RELEASE_AC31AC1,
    ),
    Migration(2, "repo_trees: default-branch trees for code pointers", REPO_TREES),
    Migration(3, "blob_texts: default-branch file texts the prompt quotes", BLOB_TEXTS),
    Migration(
        4,
        "repo_trees.blobs: blob sha per path, so unchanged files are not fetched again",
        "ALTER TABLE repo_trees ADD COLUMN blobs TEXT;",
    ),
    Migration(5, "artifact link revocations; artifacts by age (retention)", ARTIFACT_REVOCATIONS),
)
LATEST = MIGRATIONS[-1].version


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def upgrade(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply the migrations the database lacks, in order, in one transaction; the new version.

    Concurrent openers are safe: the version is read again under the write lock, so each
    migration runs once. A database newer than this release is refused, not downgraded.
    """
    latest = migrations[-1].version if migrations else 0
    current = version(conn)
    if current == latest:
        return current
    with transaction(conn):
        current = version(conn)
        if current > latest:
            raise SchemaTooNew(
                f"the database has schema version {current}; this release knows up to {latest}"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in migration.statements():
                conn.execute(statement)
            # PRAGMA takes no parameters; the version is an int from the list above.
            conn.execute(f"PRAGMA user_version = {int(migration.version)}")
            current = migration.version
    return current
