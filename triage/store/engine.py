"""The database connection: one :class:`Store` per process, sessions per unit of work.

SQLite is the embedded default (a file under ``var/``), PostgreSQL is what a
deployment with several service workers uses (``TRIAGE_DATABASE_URL``). The
two behave differently under concurrency, so this module smooths the one
difference that matters for correctness: SQLite transactions start with
``BEGIN IMMEDIATE`` so a read-then-write unit of work takes the write lock up
front instead of failing half-way with "database is locked".
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_SQLITE_PATH = Path("var") / "triage.db"


def database_url(url: str | None = None) -> str:
    """The URL to use: explicit argument, else ``TRIAGE_DATABASE_URL``, else the SQLite file."""
    if url:
        return url
    env = os.environ.get("TRIAGE_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def _prepare_sqlite(engine: Engine) -> None:
    """WAL + foreign keys + a busy timeout on every connection; writers lock at BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - trivial
        readonly = conn.get_execution_options().get("triage_readonly")
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def make_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for ``url``; ``schema`` (PostgreSQL only) isolates a test session's tables."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _prepare_sqlite(engine)
        return engine
    kwargs = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}
    if schema:
        kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
    return create_engine(url, **kwargs)


class Store:
    """The database behind the ticketing core.

    ``Store(url)`` connects; ``upgrade()`` brings the schema to the latest
    migration; ``session()`` is a unit of work that commits on success and
    rolls back on error. Repositories (``triage.store.tickets`` and friends)
    are plain functions taking a session, so a caller composes several of
    them in one transaction.
    """

    def __init__(self, url: str | None = None, *, schema: str | None = None) -> None:
        self.url = database_url(url)
        self.schema = schema
        self.engine = make_engine(self.url, schema)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: commit when the block ends, roll back if it raises.

        ``readonly`` (SQLite) skips the up-front write lock so readers run beside
        a writer under WAL; writing in such a session may then fail with "locked".
        """
        session = self._sessions()
        if readonly:
            session.connection(execution_options={"triage_readonly": True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (idempotent)."""
        from triage.store.migrate import upgrade

        upgrade(self.engine, revision)

    def create_all(self) -> None:
        """Create tables straight from the metadata (tests comparing against migrations)."""
        from triage.store.tables import Base

        Base.metadata.create_all(self.engine)

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def dispose(self) -> None:
        self.engine.dispose()
