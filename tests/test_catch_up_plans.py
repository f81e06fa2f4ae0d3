"""The duplicate index's catch-up (triage/store/similar.py) reads by index on PostgreSQL, also
in the plan PostgreSQL keeps for a statement run many times (its generic plan).

psycopg prepares a statement after a few runs; PostgreSQL then plans it once for any
parameter. For ``id > $1`` that plan assumes a third of the table, so the catch-up (run on
every intake) scanned ``tickets``, ``ticket_vectors`` and ``ticket_events`` whole, and an
intake cost more the more tickets were stored. Here: a few thousand stored tickets, the
statistics taken, and each catch-up statement planned generically: no sequential scan.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql

from triage.store import similar
from triage.store.tables import ID_MAX, TicketEvent, TicketRow, TicketVector

N = 4_000
AT = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def _tickets_with_vectors(store, ids: range) -> None:
    blob = np.ones(384, dtype=np.float32).tobytes()  # a MiniLM vector's size: its pages count
    with store.engine.begin() as conn:
        conn.execute(
            insert(TicketRow.__table__),
            [{"id": i, "subject": f"s{i}", "status": "new", "created_at": AT, "updated_at": AT} for i in ids],
        )
        conn.execute(
            insert(TicketVector.__table__),
            [{"ticket_id": i, "encoder": "e", "dim": 384, "vector": blob, "created_at": AT} for i in ids],
        )


def _analyze(store, tables: str) -> None:
    with store.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"ANALYZE {tables}")


@pytest.fixture
def stored(store):
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's generic plans")
    _tickets_with_vectors(store, range(1, N + 1))
    with store.engine.begin() as conn:
        conn.execute(
            insert(TicketEvent.__table__),
            [
                {"ticket_id": 1 + i % N, "field": "status", "old": None, "new": "new", "actor": "t", "at": AT}
                for i in range(4 * N)
            ],
        )
    _analyze(store, "tickets, ticket_vectors, ticket_events")
    return store


def _generic_plan(store, stmt, above: int, gaps: list[int]) -> str:
    """EXPLAIN of the range statement prepared with ``$1``/``$2`` for its bounds, planned
    generically (``plan_cache_mode=force_generic_plan``, as for a statement run many times)."""
    marker = 987_654_321  # rendered as literals, then the two bounds made parameters again
    sql = str(
        stmt.params(above=marker, upto=ID_MAX, **({"gaps": gaps} if gaps else {})).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    sql = sql.replace(f"> {marker}", "> $1").replace(f"<= {ID_MAX}", "<= $2")
    assert "$1" in sql and "$2" in sql, sql
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE catch_up_probe (integer, integer) AS {sql}".replace("%", "%%"))
        plan = "\n".join(
            row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE catch_up_probe({above}, {ID_MAX})")
        )
        conn.exec_driver_sql("DEALLOCATE catch_up_probe")
        conn.rollback()
    return plan


@pytest.mark.parametrize(
    "base",
    [
        pytest.param((similar._TICKETS_WITH_VECTORS, similar._T.c.id), id="tickets-with-vectors"),
        pytest.param((similar._REOPENED, similar._E.c.id), id="reopened"),
    ],
)
@pytest.mark.parametrize("gaps", [[], [5, 9, 13]], ids=["range", "range-and-gaps"])
def test_the_catch_up_range_is_an_index_read_in_the_generic_plan(stored, base, gaps):
    stmt, key = base
    plan = _generic_plan(stored, similar._unread_statement(stmt, key, bool(gaps)), N - 5, gaps)
    assert "Seq Scan" not in plan, plan


def test_the_catch_up_reads_what_was_stored_after_the_watermark(stored):
    """The range, closed above, still reads every row above the watermark (and the gaps)."""
    with stored.session(readonly=True) as session:
        rows = similar._unread(session, similar._TICKETS_WITH_VECTORS, similar._T.c.id, N - 5, {3, 7}, 500)
    assert sorted(row[0] for row in rows) == [3, 7, N - 4, N - 3, N - 2, N - 1, N]


def test_the_candidates_read_is_an_index_read_on_both_sides_with_stale_statistics(store):
    """The duplicate candidates' vectors with their tickets' status and requester (``_NEAR``, 64
    keys): with the statistics taken at an eighth of the rows (a growing desk between two
    autovacuum analyses), a join keyed on one side only was a hash join over every ticket."""
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's plans")
    _tickets_with_vectors(store, range(1, N // 8 + 1))
    _analyze(store, "tickets, ticket_vectors")
    _tickets_with_vectors(store, range(N // 8 + 1, N + 1))
    keys = list(range(7, N, 61))[:64]
    sql = str(
        similar._NEAR.params(keys=keys).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    with store.engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql.replace("%", "%%")))
        found = conn.exec_driver_sql(sql.replace("%", "%%")).all()
    assert "Seq Scan" not in plan, plan
    assert sorted(row[0] for row in found) == keys
