"""A new SQLite store's first connection waits for the writer that holds the file.

Two gunicorn workers take their first requests at once against a file that is still in
rollback mode: one migrates it (holding the write lock) while the other's first connection
asks for WAL mode. SQLite refuses that switch at once with "database is locked", without
waiting on the busy timeout (waiting could deadlock), and the request got a 500. Seen in a
bench run (docs/notes/2026-12-06-i15h4-4.md, "A 500 on a fresh SQLite store at start").
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import text

from triage.store import Store


def test_the_first_connection_waits_for_a_writer_holding_a_new_file(tmp_path):
    path = tmp_path / "triage.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE seed (x)")  # a file in rollback mode, as a migration starts it
    other.execute("BEGIN IMMEDIATE")  # the other worker, migrating
    other.execute("CREATE TABLE made_by_the_other_worker (x)")
    released = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    released.start()
    store = Store(f"sqlite:///{path}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.execute(text("SELECT count(*) FROM made_by_the_other_worker")).scalar() == 0
    finally:
        released.join()
        other.close()
        store.dispose()
