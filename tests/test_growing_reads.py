"""Reads that run on every delivery pass or intake stay bounded however long the desk has run.

Each builds the history a busy desk leaves behind (failed notices, an hour of other
requesters' tickets), takes the statistics, and checks what PostgreSQL reads (buffers, from
``EXPLAIN (ANALYZE, BUFFERS)``: a count of pages, not a time) and which index SQLite picks.
Before migration 0013 the due reads walked every failed notice (their old index kept them in
its ``delivered_at IS NULL`` range for good) and the mail-loop guard read every ticket of the
hour: server CPU per intake grew with the store (round 8, ``pgserver``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite

from triage.store import doorbell, outbound
from triage.store.tables import OutboxMessage, TicketRow

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=timezone.utc)
HISTORY = 3_000  # rows a desk has left behind (failed notices; tickets of the last hour)


def _analyze(store, tables: str) -> None:
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            # VACUUM too: the rows earlier tests of the session deleted stay in the indexes
            # (dead) until vacuumed, and a read here would count their pages
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(f"VACUUM ANALYZE {tables}")
    else:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def _read(store, stmt, params: dict) -> tuple[str, int]:
    """The plan of ``stmt`` (its parameters inlined) and, on PostgreSQL, the pages it read."""
    dialect = postgresql.dialect() if store.dialect == "postgresql" else sqlite.dialect()
    sql = str(stmt.params(**params).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    sql = sql.replace("%", "%%")
    with store.engine.connect() as conn:
        if store.dialect != "postgresql":
            plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            return plan, 0
        plan = "\n".join(
            row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql)
        )
        conn.rollback()
    pages = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", plan)
    assert pages is not None, plan
    return plan, int(pages.group(1)) + int(pages.group(2) or 0)


def _notice(i: int, **fields) -> dict:
    row = {
        "kind": "mail",
        "ticket_id": None,
        "dedupe_key": f"n{i}",
        "event": "mail.received",
        "payload": {},
        "attempts": 1,
        "next_attempt_at": NOW - timedelta(minutes=5),
        "delivered_at": None,
        "failed": False,
        "created_at": NOW - timedelta(minutes=5),
    }
    return {**row, **fields}


def _outbox(store, rows: list[dict]) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), rows)
    _analyze(store, "outbox")


@pytest.fixture
def failed_notices(store):
    """``HISTORY`` failed notices and as many delivered, then 3 due."""
    rows = [_notice(i, failed=True) for i in range(HISTORY)]
    rows += [_notice(HISTORY + i, delivered_at=NOW - timedelta(minutes=4)) for i in range(HISTORY)]
    _outbox(store, rows + [_notice(2 * HISTORY + i) for i in range(3)])
    return store


@pytest.mark.parametrize(
    "stmt, params",
    [
        pytest.param(doorbell._OLDEST_DUE, {"now": NOW}, id="oldest-due"),
        pytest.param(outbound._DUE.limit(50), {"now": NOW}, id="mail-claim"),
        # PostgreSQL's leasing claim picks its rows with this select (a CTE of its UPDATE)
        pytest.param(
            getattr(outbound._DUE_IDS, "element", outbound._DUE_IDS).limit(50), {"now": NOW}, id="mail-lease"
        ),
    ],
)
def test_the_due_reads_do_not_walk_failed_notices(failed_notices, stmt, params):
    plan, pages = _read(failed_notices, stmt, params)
    assert "ix_outbox_due" in plan, plan  # either of the two partial indexes (0013, 0014)
    if failed_notices.dialect == "postgresql":
        assert pages < 40, plan  # the 3 due rows and their index pages; before: over 3,000


def test_the_oldest_due_is_one_range_read_past_a_backlog_due_later(store):
    """Retries and leased rows due in an hour (unsent, so in ``ix_outbox_due``) are not read
    to find the oldest row due now (``ix_outbox_due_at``). The claims take the due rows in
    id order: how many unsent rows they pass over is the planner's call (bounded by the
    unsent rows, never the sent or failed ones: the test above)."""
    rows = [_notice(i, next_attempt_at=NOW + timedelta(hours=1)) for i in range(HISTORY)]
    _outbox(store, rows + [_notice(HISTORY + i) for i in range(3)])
    plan, pages = _read(store, doorbell._OLDEST_DUE, {"now": NOW})
    assert "ix_outbox_due_at" in plan, plan
    if store.dialect == "postgresql":
        assert pages < 20, plan  # one range of the due rows; with ix_outbox_due alone: ~100


def _tickets_of_the_hour(store, requesters: int) -> None:
    """``HISTORY`` tickets in the hour before ``NOW``, one a second, cycling ``requesters``."""
    rows = [
        {
            "subject": f"s{i} " + "x" * 200,  # a real ticket's width: a few dozen a page
            "requester": f"user{i % requesters}@example.org",
            "status": "new",
            "created_at": NOW - timedelta(seconds=i),
            "updated_at": NOW,
        }
        for i in range(HISTORY)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(TicketRow.__table__), rows)
    _analyze(store, "tickets")


def _newest_of(store, requesters: list[str]) -> list[int]:
    """Each requester's newest ticket (by time: ids run the other way here)."""
    with store.engine.connect() as conn:
        return sorted(
            conn.execute(
                select(TicketRow.id)
                .where(TicketRow.requester == who)
                .order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
                .limit(1)
            ).scalar_one()
            for who in requesters
        )


def _guard_read(store, requesters: list[str], per_hour: int) -> tuple[str, int, list]:
    """The claim's read of the guard's tickets (``outbound._parts``), as ``_around`` binds it
    for the requesters' newest tickets: its plan, pages (PostgreSQL) and rows."""
    postgres = store.dialect == "postgresql"
    opened = outbound._parts(postgres)[2]
    if postgres:
        params: dict = {"notified": _newest_of(store, requesters), "per_hour": per_hour}
    else:
        params = {"requesters": requesters, "since": NOW - timedelta(hours=1), "until": NOW}
    plan, pages = _read(store, opened, params)
    with store.engine.connect() as conn:
        rows = list(conn.execute(opened, params))
    return plan, pages, rows


def test_a_few_requesters_tickets_of_the_hour_are_an_index_range_each(store):
    """The mail-loop guard's read (part of the claim's, ``outbound._parts``): 3 requesters among 100 who
    opened ``HISTORY`` tickets in the hour."""
    _tickets_of_the_hour(store, 100)
    asked = ["user1@example.org", "user2@example.org", "user3@example.org"]
    plan, pages, _ = _guard_read(store, asked, per_hour=10)
    assert "ix_tickets_requester_created_at" in plan, plan
    if store.dialect == "postgresql":
        assert pages < 150, plan  # their 90 tickets; before: the hour's 3,000 (filtered)


def test_an_auto_responders_hour_is_read_at_most_the_limit_per_notice(store):
    """A requester opened 300 tickets in the hour (the loop the guard is for): on PostgreSQL
    the read gives at most ``per_hour`` of them per notice's ticket, newest first, and its
    pages do not grow with them (a LATERAL with LIMIT per ticket). Before, as still on SQLite
    (in-process reads): all 300, a heap page each."""
    if store.dialect != "postgresql":
        pytest.skip("the bounded read is PostgreSQL's")
    _tickets_of_the_hour(store, 10)  # user0: every 10th ticket, 300 of them on as many pages
    plan, pages, rows = _guard_read(store, ["user0@example.org"], per_hour=10)
    assert "ix_tickets_requester_created_at" in plan, plan
    assert len(rows) == 10, rows  # of the 299 in the hour before its newest: the limit
    newest = {NOW - timedelta(seconds=10 * s) for s in range(1, 11)}
    assert {row.created_at for row in rows} == newest
    assert pages < 30, plan
    # the same-run reference: the whole hour, as read before (and still on SQLite)
    window = {"requesters": ["user0@example.org"], "since": NOW - timedelta(hours=1), "until": NOW}
    _, whole = _read(store, outbound._opened_in_window(), window)
    print(f"guard read, pages: bounded {pages}, whole hour {whole}")
    assert whole > 5 * pages, plan
