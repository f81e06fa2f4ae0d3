"""triage.store.bulk: a batch's rows as one statement store what executemany stores, both stores.

On PostgreSQL the rows go as one ``unnest`` statement instead of psycopg's one execution
per row; on SQLite (and for shapes it does not know) as the driver's executemany. Either
way the table must end up holding the same rows: values through the columns' own types
(aware times stored as naive UTC, JSON including a JSON null), Python defaults for the
columns a row leaves out, ``ON CONFLICT DO NOTHING`` skipping, ``RETURNING`` in order.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from triage.store import bulk
from triage.store.tables import IdempotencyKey, OutboxMessage, SlaClockRow, Team, TicketEvent, TicketRow

AT = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
CET = timezone(timedelta(hours=1))


@contextmanager
def executions(store) -> Iterator[list[tuple[str, bool]]]:
    """(statement's first words, executemany) of each cursor execution inside the block."""
    seen: list[tuple[str, bool]] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append((" ".join(statement.split()[:3]).lower(), executemany))

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)


def tickets(conn, n: int) -> list[int]:
    rows = [
        {"subject": f"s{i}", "body": "", "channel": "api", "status": "new", "queue": "triage"}
        for i in range(n)
    ]
    rows = [
        {**r, "extra": {}, "tags": [], "escalation_level": 0, "created_at": AT, "updated_at": AT}
        for r in rows
    ]
    return sorted(bulk.execute(conn, insert(TicketRow.__table__).returning(TicketRow.id), rows).scalars())


def test_rows_stored_in_one_statement_equal_executemany_rows(store):
    events = insert(TicketEvent.__table__)
    clocks = insert(SlaClockRow.__table__)
    with store.engine.begin() as conn:
        a, b = tickets(conn, 2)
        event_rows = [
            {"ticket_id": t, "field": f, "old": old, "new": "x", "actor": "ann", "at": at}
            for t, f, old, at in ((a, "created", None, AT), (b, "team", "Net", AT.astimezone(CET)))
        ]
        clock_rows = [
            {
                "ticket_id": t,
                "kind": "first_response",
                "policy": None,
                "state": state,
                "running": True,
                "paused": False,
                "stopped_at": None,
                "due_at": AT + timedelta(hours=4),
                "breached": False,
                "next_level_at": None,
            }
            for t, state in ((a, {"clock": {"pauses": []}, "fired": ["warning"]}), (b, None))
        ]
        with executions(store) as seen:
            bulk.execute(conn, events, event_rows)
            bulk.execute(conn, clocks, clock_rows)
        conn.execute(events, event_rows)  # the reference: SQLAlchemy's executemany
        conn.execute(clocks, [{**r, "kind": "resolution"} for r in clock_rows])
        stored_events = conn.execute(
            select(
                TicketEvent.ticket_id, TicketEvent.field, TicketEvent.old, TicketEvent.new, TicketEvent.at
            ).order_by(TicketEvent.id)
        ).all()
        stored_clocks = conn.execute(
            select(
                SlaClockRow.kind,
                SlaClockRow.ticket_id,
                SlaClockRow.state,
                SlaClockRow.state.is_(None),
                SlaClockRow.due_at,
                SlaClockRow.running,
                SlaClockRow.next_level_at,
            ).order_by(SlaClockRow.id)
        ).all()
    assert stored_events[:2] == stored_events[2:]  # bulk's rows, then executemany's
    assert stored_events[1].at.replace(tzinfo=timezone.utc) == AT  # stored as UTC
    assert [c[1:] for c in stored_clocks[:2]] == [c[1:] for c in stored_clocks[2:]]
    assert (
        stored_clocks[1].state is None and stored_clocks[1][3] is False
    )  # a JSON null, as SQLAlchemy stores it
    if store.dialect == "postgresql":  # one execution each, not one per row
        assert ("insert into ticket_events", False) in seen and ("insert into sla_clocks", False) in seen
        assert not any(many for _, many in seen)


def test_defaults_on_conflict_returning_and_update(store):
    keys = IdempotencyKey.__table__
    claim = (pg_insert if store.dialect == "postgresql" else sqlite_insert)(keys).on_conflict_do_nothing()
    owner = update(keys).where(keys.c.key == bindparam("key_")).values(ticket_id=bindparam("owner"))
    outbox = OutboxMessage.__table__
    once = (pg_insert if store.dialect == "postgresql" else sqlite_insert)(outbox).on_conflict_do_nothing(
        index_elements=[outbox.c.dedupe_key]
    )
    with store.engine.begin() as conn:
        a, b, c = tickets(conn, 3)
        assert [a, b, c] == sorted({a, b, c})
        bulk.execute(conn, claim, [{"key": "k1", "created_at": AT}, {"key": "k2", "created_at": AT}])
        taken = set(
            bulk.execute(
                conn,
                claim.returning(keys.c.key),
                [{"key": k, "created_at": AT} for k in ("k0", "k1", "k2", "k3")],
            ).scalars()
        )
        assert taken == {"k0", "k3"}  # k1 and k2 were held: nothing done for them
        bulk.execute(conn, owner, [{"key_": "k1", "owner": a}, {"key_": "k3", "owner": c}])
        owners = dict(conn.execute(select(keys.c.key, keys.c.ticket_id)).all())
        assert owners == {"k0": None, "k1": a, "k2": None, "k3": c}
        mail = {
            "kind": "mail",
            "ticket_id": a,
            "event": "mail.received",
            "payload": {"to": ["x@example.org"]},
        }
        bulk.execute(conn, once, [{**mail, "dedupe_key": "r:1"}, {**mail, "dedupe_key": "r:2"}])
        bulk.execute(conn, once, [{**mail, "dedupe_key": "r:2"}, {**mail, "dedupe_key": "r:3"}])
        rows = conn.execute(
            select(outbox.c.dedupe_key, outbox.c.attempts, outbox.c.next_attempt_at).order_by(outbox.c.id)
        ).all()
    assert [r.dedupe_key for r in rows] == ["r:1", "r:2", "r:3"]  # r:2 once
    assert all(r.next_attempt_at is not None for r in rows)  # the Python default, as executemany fills it


def test_one_row_and_rows_of_mixed_keys_go_as_before(store):
    events = insert(TicketEvent.__table__)
    row = {"field": "f", "old": None, "new": "1", "actor": "ann", "at": AT}
    with store.engine.begin() as conn:
        (a,) = tickets(conn, 1)
        bulk.execute(conn, events, [{**row, "ticket_id": a}])
        mixed = [{**row, "ticket_id": a}, {"ticket_id": a, "field": "g", "actor": "ann", "at": AT}]
        with pytest.raises(StatementError, match="A value is required"):  # as executemany refuses it
            bulk.execute(conn, events, mixed)
        stored = conn.execute(select(TicketEvent.field, TicketEvent.new)).all()
    assert [tuple(r) for r in stored] == [("f", "1")]


def test_a_groups_writes_are_one_execution_per_statement_not_per_row(store):
    """Inserts (one per table) and the new tickets' field changes (the model's, the rules',
    routing's: on SQLite one UPDATE per set of changed columns, not the ORM flush's one per
    row; on PostgreSQL none: the tickets are inserted with them)."""
    from store_support import NOW, RULES, sure_triager
    from triage.store.intake import intake_many

    payloads = [{"subject": f"VPN down {i}", "requester": f"u{i}@example.com"} for i in range(4)]
    with executions(store) as seen:
        results = intake_many(
            store,
            payloads,
            keys=[f"g{i}" for i in range(4)],
            actor="ann",
            triager=sure_triager(),
            ruleset=RULES,
            now=NOW,
            auto_assign=False,
        )
    assert all(not isinstance(r, Exception) and r.created for r in results)
    inserts = [(words, many) for words, many in seen if words.startswith("insert into")]
    assert len(inserts) == len({words for words, _ in inserts}) >= 6  # each table once
    updates = [many for words, many in seen if words.startswith("update tickets")]
    if store.dialect == "postgresql":  # psycopg's executemany is one execution per row
        assert not any(many for _, many in seen), seen
        assert not updates  # the rows went in with their fields (ids drawn first): no UPDATE
    else:
        assert 1 <= len(updates) < len(payloads)  # the four tickets changed alike
    with store.session(readonly=True) as s:  # and the changes are stored
        stored = s.execute(select(TicketRow.id, TicketRow.category, TicketRow.queue)).all()
    assert {(r.ticket.id, r.ticket.category, r.ticket.queue) for r in results} == {tuple(r) for r in stored}
    assert all(r.ticket.category for r in results)


def test_a_groups_writes_after_its_tickets_go_in_one_round_trip_on_postgresql(store):
    """The rows nobody reads back (the new tickets, with their fields; predictions, clocks,
    outbox, events, the team) are sent together in psycopg's pipeline mode, one wait for all
    of them; the statements whose answers the group needs (the keys claimed, the tickets'
    ids drawn) go together before them, in a round trip of their own."""
    if store.dialect != "postgresql":
        pytest.skip("a pipeline is psycopg's (SQLite runs in this process: no round trips)")
    from psycopg import pq

    from store_support import NOW, RULES, sure_triager
    from triage.store.intake import intake_many

    seen: list[tuple[str, bool]] = []
    pipelines: list[object] = []  # each statement's pipeline (held: ids stay distinct)

    def listen(conn, cursor, statement, parameters, context, executemany):
        dbapi = conn.connection.dbapi_connection
        piped = dbapi.pgconn.pipeline_status != pq.PipelineStatus.OFF
        seen.append((" ".join(statement.split()[:3]).lower(), piped))
        pipelines.append(dbapi._pipeline)

    payloads = [{"subject": f"VPN down {i}", "requester": f"u{i}@example.com"} for i in range(3)]
    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        results = intake_many(
            store,
            payloads,
            keys=[f"p{i}" for i in range(3)],
            actor="ann",
            triager=sure_triager(),
            ruleset=RULES,
            now=NOW,
            auto_assign=False,
        )
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    assert all(not isinstance(r, Exception) and r.created for r in results)
    piped = {words for words, p in seen if p}
    assert {
        "insert into predictions",
        "insert into sla_clocks",
        "insert into outbox",
        "insert into ticket_events",
        "insert into teams",
        "insert into tickets",
        "update idempotency_keys set",
    } <= piped, seen
    words = [w for w, _ in seen]
    claim = words.index("insert into idempotency_keys")
    draw = next(i for i, w in enumerate(words) if w.startswith("select nextval("))  # the ids
    writes = words.index("insert into predictions")
    assert seen[claim][1] and seen[draw][1], seen
    assert pipelines[claim] is pipelines[draw] is not pipelines[writes], seen
    with store.session(readonly=True) as s:  # and every row is there
        assert s.scalar(select(func.count()).select_from(TicketEvent)) >= 3 * 4
        assert s.scalar(select(func.count()).select_from(SlaClockRow)) == 3 * 2
        assert s.scalar(select(func.count()).select_from(Team).where(Team.name == "Net")) == 1


def test_a_failing_write_of_many_raises_as_one_statement_would(store):
    """A statement of the round trip fails (an event of a ticket that is not there): the
    caller sees SQLAlchemy's IntegrityError, as from one execute, and nothing of it is kept."""
    events = insert(TicketEvent.__table__)
    row = {"field": "f", "old": None, "new": "1", "actor": "ann", "at": AT}
    with pytest.raises(IntegrityError):
        with store.engine.begin() as conn:
            (a,) = tickets(conn, 1)
            bulk.execute_all(
                conn, [(events, [{**row, "ticket_id": a}]), (events, [{**row, "ticket_id": a + 99}])]
            )
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(TicketEvent)) == 0


def test_a_team_already_stored_draws_no_id(store):
    """Intake names a team in every batch that routes; the insert that makes sure it exists
    must not draw an id when it does (``ON CONFLICT DO NOTHING`` alone would, on PostgreSQL,
    and a busy desk would run ``teams.id`` out)."""
    from triage.store import event_log, routing

    for _ in range(3):
        with store.session() as s, event_log.batched(s):
            routing.ensure_team_once(s, "Net")
            routing.ensure_team_once(s, "Net")
    with store.session() as s:
        net, other = routing.ensure_team(s, "Net"), routing.ensure_team(s, "Other")
    assert other.id == net.id + 1
    with store.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Team)) == 2
