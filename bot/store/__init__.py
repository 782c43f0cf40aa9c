"""The store layer: every SQL statement of the bot, behind one class per store.

- `db`: connections (WAL, busy timeout), `transaction(conn)` (the one BEGIN IMMEDIATE /
  COMMIT / ROLLBACK), and the schema brought up to date on every open.
- `schema`: the ordered migrations of the bot database, keyed on `PRAGMA user_version`.
- one module per store (inbox, runs, outbox, mirror, artifacts, triage_records, actions,
  trees, blobs, dashboard): synchronous methods whose arguments and results are plain
  values and models, never rows, SQL or FTS syntax.
- `thread`: `DatabaseThread` and the `AsyncStore` facades, so async code never runs
  SQLite on the event loop (the inbox keeps threads of its own for its group commit).

A second engine (PostgreSQL) plugs in here: its own `connect`/`transaction`/migrations
and its own class per store with the same public methods; callers, the facades and the
error names below stay as they are.
"""

import sqlite3

# What a failed store call raises (a locked or unwritable database, a full disk, ...).
StoreError = sqlite3.Error
# The database as a whole failed (locked, full, read-only), not one statement or row.
StoreUnavailable = sqlite3.OperationalError
