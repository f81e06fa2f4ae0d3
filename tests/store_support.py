"""Helpers of the store tests: every test runs on SQLite (file, WAL) and PostgreSQL.

The fixtures (``backend``, ``store``) are in ``conftest.py``.

PostgreSQL comes from ``TRIAGE_TEST_POSTGRES_URL`` (default: the local server).
Each test session gets its own schema with a random name, so parallel runs
never collide; tables are emptied between tests. When PostgreSQL does not
answer, its tests are skipped with the reason, except under ``CI=true``,
where that is a failure: CI must test what production runs.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import pytest
from sqlalchemy import create_engine, event, text

from triage.rules import RuleSet
from triage.store import Store
from triage.store.tables import Base

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def postgres_url() -> str:
    return os.environ.get("TRIAGE_TEST_POSTGRES_URL") or DEFAULT_PG


def postgres_or_skip() -> str:
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


# The intake tests' clock, rules and a model sure of everything (applies all three fields).
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
RULES = RuleSet.load()


def sure_triager():
    """A stand-in model that applies category Network, priority P2 and team Net."""
    from test_store_feedback import FakeTriager, pred  # a test module: imported on use

    return FakeTriager(
        {
            "category": pred("Network", 0.99, "apply"),
            "priority": pred("P2", 0.95, "apply"),
            "team": pred("Net", 0.93, "apply"),
        }
    )


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store's engine runs inside the block, lower-cased, one line each."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()).lower())

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)


FIXTURES = ("backend", "store")


def __getattr__(name: str):
    if name in FIXTURES:  # an import by name made a per-module copy of a session fixture
        raise ImportError(
            f"{name!r} is a fixture defined in tests/conftest.py: use it as an "
            f"argument, do not import it from {__name__}"
        )
    raise AttributeError(name)
