"""Pooled connections (triage/store/engine.py): checked before use only when in doubt.

A PostgreSQL connection reused at once is not pinged (``pool_pre_ping`` sent a ``SELECT 1``
on every check-out, over half of a short read transaction); one the server closed (a
restart, a terminated backend) is found out at check-out and replaced, so the caller's
unit of work still succeeds; one idle long enough is pinged.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from store_support import postgres_url
from triage.store import Store, engine as engine_module
from triage.store import tickets


@pytest.fixture
def pg(store):
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's pooled connections")
    store.engine.dispose()  # a pool of its own for the test: counts start from nothing
    return store


@pytest.fixture
def pings(pg, monkeypatch):
    sent = []
    real = pg.engine.dialect.do_ping

    def counted(dbapi_connection):
        sent.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(pg.engine.dialect, "do_ping", counted)
    return sent


def _backend_pid(store: Store) -> int:
    with store.session(readonly=True) as session:
        return int(session.execute(text("select pg_backend_pid()")).scalar_one())


def test_a_connection_reused_at_once_is_not_pinged(pg, pings):
    first = _backend_pid(pg)
    for _ in range(5):
        assert _backend_pid(pg) == first  # the same pooled connection each time
    assert pings == []


def test_a_connection_idle_past_the_limit_is_pinged_first(pg, pings, monkeypatch):
    _backend_pid(pg)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)
    _backend_pid(pg)
    assert len(pings) == 1


def test_a_connection_the_server_closed_is_replaced_before_the_work_sees_it(pg, pings):
    """As after a database restart: the pooled connection's backend is gone, and the next
    unit of work (a read, then a write) runs on a new one instead of failing."""
    dead = _backend_pid(pg)
    admin = create_engine(postgres_url())
    with admin.begin() as conn:
        assert conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": dead}).scalar_one()
    admin.dispose()
    _wait_until_gone(dead)
    assert _backend_pid(pg) != dead
    assert len(pings) == 1  # the closed socket said so: pinged, failed, the pool renewed
    with pg.session() as session:
        ticket, created = tickets.create(session, {"subject": "after the restart"}, actor="t")
    assert created and ticket.id


def _wait_until_gone(pid: int) -> None:
    import time

    admin = create_engine(postgres_url())
    try:
        for _ in range(200):
            with admin.connect() as conn:
                if not conn.execute(
                    text("select count(*) from pg_stat_activity where pid = :pid"), {"pid": pid}
                ).scalar_one():
                    return
            time.sleep(0.01)
    finally:
        admin.dispose()


def test_intake_reads_on_postgresql_run_without_a_transaction_and_leave_none_behind(pg):
    """The reads before an intake's write (duplicate search, history) are autocommit on
    PostgreSQL: no BEGIN and COMMIT round trips (each statement has its own snapshot under
    READ COMMITTED either way). The pooled connection then writes atomically again."""
    from psycopg.pq import TransactionStatus

    from triage.store.intake import _reading

    with pg.session() as session:
        with _reading(session):
            session.execute(text("select count(*) from tickets")).scalar_one()
            dbapi = session.connection().connection.dbapi_connection
            assert dbapi.info.transaction_status == TransactionStatus.IDLE  # no transaction open
    with pytest.raises(RuntimeError):
        with pg.session() as session:  # most likely the same pooled connection
            tickets.create(session, {"subject": "half a unit of work"}, actor="t")
            session.flush()
            raise RuntimeError("the unit of work fails after its first write")
    with pg.session(readonly=True) as session:
        assert session.execute(text("select count(*) from tickets")).scalar_one() == 0
