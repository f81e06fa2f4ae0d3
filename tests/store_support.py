"""Fixtures for the store tests: every test runs on SQLite (file, WAL) and PostgreSQL.

PostgreSQL comes from ``TRIAGE_TEST_POSTGRES_URL`` (default: the local server).
Each test session gets its own schema with a random name, so parallel runs
never collide; tables are emptied between tests. When PostgreSQL does not
answer, its tests are skipped with the reason, except under ``CI=true``,
where that is a failure: CI must test what production runs.
"""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from triage.store import Store
from triage.store.tables import Base

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]


def postgres_url() -> str:
    return os.environ.get("TRIAGE_TEST_POSTGRES_URL") or DEFAULT_PG


def _postgres_or_skip() -> str:
    url = postgres_url()
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not here"
        reason = f"PostgreSQL does not answer at {url} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(f"{reason}; set TRIAGE_TEST_POSTGRES_URL to run these tests")
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request, tmp_path_factory):
    """A migrated database for the whole session: (kind, Store)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "triage.db"
        store = Store(f"sqlite:///{path}")
        store.upgrade()
        yield store
        store.dispose()
        return
    url = _postgres_or_skip()
    schema = f"triage_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    store = Store(url, schema=schema)
    try:
        store.upgrade()
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def empty(store: Store) -> None:
    """Remove every row so each test starts from nothing.

    DELETE, children first, rather than TRUNCATE: on a handful of rows it is
    ten times faster on PostgreSQL (TRUNCATE rewrites every table's files).
    Tests never rely on particular ids.
    """
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with store.engine.begin() as conn:
        for name in names:
            conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def store(backend):
    empty(backend)
    return backend
