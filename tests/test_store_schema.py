"""The migrations build exactly the schema the table metadata describes, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from triage.store import Store, database_url
from triage.store.migrate import alembic_config
from triage.store.tables import Base


def _not_fulltext(name, type_, parent_names) -> bool:
    """The full-text index (migration 0008: SQLite FTS5 tables, a PostgreSQL expression index)
    is the database's own search machinery, not part of the table metadata."""
    return not (
        (type_ == "table" and name and name.startswith("tickets_fts"))
        or (type_ == "index" and name == "ix_tickets_fulltext")
    )


def test_migrations_match_the_metadata(backend):
    with backend.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True, "include_name": _not_fulltext}
        )
        assert compare_metadata(context, Base.metadata) == []
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert context.get_current_revision() == head


def test_upgrade_is_idempotent(backend):
    backend.upgrade()
    assert set(backend.table_names()) >= set(Base.metadata.tables)


def test_sqlite_store_uses_wal_and_foreign_keys(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.dispose()


def test_database_url_defaults_to_the_sqlite_file_and_ignores_the_environment(monkeypatch):
    monkeypatch.setenv("TRIAGE_DATABASE_URL", "postgresql+psycopg://h/db")  # entry points read it
    assert database_url() == "sqlite:///var/triage.db"
    assert database_url(None, "/srv/triage") == "sqlite:////srv/triage/triage.db"
    assert database_url("sqlite:///other.db") == "sqlite:///other.db"


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.upgrade()
    with store.session() as writer:  # holds the write lock (BEGIN IMMEDIATE)
        writer.execute(text("INSERT INTO teams (name) VALUES ('a')"))
        with store.session(readonly=True) as reader:  # WAL: reads the last commit at once
            assert reader.execute(text("SELECT count(*) FROM teams")).scalar() == 0
    store.dispose()
