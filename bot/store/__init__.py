"""The store layer: every SQL statement of the bot, behind one interface per store.

SQLite specifics (connections, transactions, migrations, FTS5) stay inside this package,
so a second engine can plug in behind the same store classes.
"""

import sqlite3

# What a failed store call raises (a locked or unwritable database, a full disk, ...).
StoreError = sqlite3.Error
# The database as a whole failed (locked, full, read-only), not one statement or row.
StoreUnavailable = sqlite3.OperationalError
