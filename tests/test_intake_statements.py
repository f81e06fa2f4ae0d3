"""How many statements one intake sends to the database (a budget, not a timing).

On PostgreSQL each statement is a round trip and a parse/bind/execute in the server, and
the CPU of both ends per intake is what issue 15 measures (bench/bench_service.py's worker
and db CPU columns). An HTTP intake in steady state (the open-ticket index loaded) reads
twice for the catch-up, once for the candidates it found, then writes each table's rows
with one statement. A change that adds a statement to every intake shows here first.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from store_support import NOW, RULES, statements, sure_triager
from triage.encoder import HashingEncoder
from triage.store import similar
from triage.store.intake import intake_grouped

ENC = HashingEncoder()
COMMON = dict(triager=sure_triager(), ruleset=RULES, encoder=ENC, auto_assign=False)
# the steady state's statements, as counted when this budget was set (round 6): reads — the
# catch-up's tickets and reopened events, the candidates' vectors —; writes — tickets, the
# team's look-up, the model's fields (UPDATE tickets), predictions, sla_clocks, outbox,
# ticket_events, ticket_vectors (PostgreSQL's NOTIFY of the queued mail was a twelfth until
# the delivery loop stopped listening, migration 0012); SQLite also
# sends its BEGIN and BEGIN IMMEDIATE as statements (psycopg sends BEGIN and COMMIT, and
# SQLite its COMMIT, outside the cursor: not counted)
BUDGET = {"postgresql": 11, "sqlite": 13}
# Since round 7 on PostgreSQL: the write statements whose answers nobody waits for (the ticket,
# inserted with its fields after its id is drawn; predictions, clocks, outbox, events, vector,
# the team) go in one round trip (psycopg's pipeline). Round trips then: the three reads, the
# id drawn, the writes (BEGIN and COMMIT, outside the cursor, not counted). Since round 8 the
# idempotency key's claim goes with the id drawn: a keyed intake (every HTTP one that sends
# Idempotency-Key) waits no more than one without a key (it was one more).
ROUND_TRIPS = 5


def _intake(store, i: int, key: str | None = None):
    body = {"subject": f"VPN drops every {i} minutes", "body": "since 9", "requester": f"u{i}@example.com"}
    return intake_grouped(
        store, body, actor="api", now=NOW + timedelta(seconds=i), idempotency_key=key, **COMMON
    )


@pytest.fixture(autouse=True)
def fresh_index(store):
    """As a fresh process: no index yet (another test's ticket 1 is not this one's)."""
    similar._INDEXES.pop(store.engine, None)
    similar._RECENT.pop(store.engine, None)
    yield
    for kept in list(similar._INDEXES.get(store.engine, {}).values()):
        assert kept.done.wait(60) and kept.index.wait(60)


def test_an_intake_in_steady_state_stays_within_its_statement_budget(store):
    for i in range(3):  # the index is loaded, the teams exist
        _intake(store, i)
    for kept in similar._INDEXES.get(store.engine, {}).values():
        assert kept.done.wait(60)
    with statements(store) as seen:
        result = _intake(store, 3)
    assert result.created and result.duplicates  # the search ran and found the earlier ones
    assert len(seen) <= BUDGET[store.dialect], "\n".join(seen)


@pytest.mark.parametrize("key", [None, "retry-safe-3"], ids=["no-key", "idempotency-key"])
def test_an_intake_on_postgresql_waits_for_the_server_within_its_round_trip_budget(store, key):
    if store.dialect != "postgresql":
        pytest.skip("round trips to a server: SQLite runs in this process")
    from psycopg import pq

    for i in range(3):
        _intake(store, i)
    for kept in similar._INDEXES.get(store.engine, {}).values():
        assert kept.done.wait(60)
    sent: list[tuple[str, bool]] = []
    trips: list[object] = []  # a statement sent alone, or a pipeline (held: ids stay distinct)

    def listen(conn, cursor, statement, parameters, context, executemany):
        dbapi = conn.connection.dbapi_connection
        piped = dbapi.pgconn.pipeline_status != pq.PipelineStatus.OFF
        sent.append((" ".join(statement.split()[:3]).lower(), piped))
        if not piped:
            trips.append(object())
        elif not trips or trips[-1] is not dbapi._pipeline:
            trips.append(dbapi._pipeline)

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        assert _intake(store, 3, key=key).created
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    assert len(trips) <= ROUND_TRIPS, sent
    assert ("insert into ticket_vectors", True) in sent and ("insert into tickets", True) in sent
