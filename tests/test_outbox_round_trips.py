"""Round trips of the outbox and the mail intake, counted (statements and transactions sent
to the real database, SQLite and PostgreSQL): what each pass costs does not grow per item."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from triage.store import webhooks
from triage.store.tables import OutboxMessage, utcnow


@contextmanager
def counted(store):
    """``{"commit": n, "statements": [sql, ...]}`` sent through ``store``'s engine meanwhile."""
    seen: dict = {"commit": 0, "statements": []}

    def on_commit(_conn):
        seen["commit"] += 1

    def on_execute(_conn, _cursor, statement, _parameters, _context, _executemany):
        seen["statements"].append(statement)

    event.listen(store.engine, "commit", on_commit)
    event.listen(store.engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(store.engine, "commit", on_commit)
        event.remove(store.engine, "before_cursor_execute", on_execute)


class _Receiver(http.server.BaseHTTPRequestHandler):
    refuse: set[str] = set()  # X-Triage-Delivery ids answered 503

    def do_POST(self):  # noqa: N802 - http.server naming
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(503 if self.headers["X-Triage-Delivery"] in self.refuse else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.refuse = set()
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_a_webhook_pass_records_its_outcomes_in_one_transaction(store, receiver):
    with store.session() as s:
        webhooks.register(s, receiver, "k")
        ids = [
            m.id
            for m in _flushed(s, webhooks.queue_many(s, "ticket.escalated", [{"n": i} for i in range(20)]))
        ]
    _Receiver.refuse = {str(ids[3]), str(ids[11])}
    with counted(store) as seen:
        counts = webhooks.deliver(store, allow="127.0.0.1")
    assert counts == {"sent": 18, "retry": 2, "failed": 0}
    assert seen["commit"] == 2  # the claim, then every outcome together (was 1 + 20)
    updates = [q for q in seen["statements"] if q.lstrip().upper().startswith("UPDATE")]
    # the lease, one for the 18 delivered, one (executemany) for the two failures; was 20 + 20
    assert len(updates) == 3
    with store.session() as s:
        rows = {m.id: m for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "webhook"))}
    assert all(
        rows[i].delivered_at and rows[i].attempts == 1 and not rows[i].last_error
        for i in ids
        if i not in (ids[3], ids[11])
    )
    for i in (ids[3], ids[11]):
        assert rows[i].delivered_at is None and rows[i].attempts == 1 and rows[i].last_error == "HTTP 503"
        assert rows[i].next_attempt_at > utcnow()


def _flushed(session, rows):
    session.flush()
    return rows


def test_a_mail_round_all_sent_records_its_outcome_in_one_statement_outside_a_transaction(store):
    """PostgreSQL: the outcome of a round whose mails were all sent is one UPDATE in autocommit
    (no BEGIN and COMMIT round trips); a round with a failure, and SQLite, keep the transaction."""
    from triage.store import outbound
    from triage.store.intake import intake

    with store.session() as s:
        for i in range(3):
            intake(s, {"subject": f"s{i}", "body": "b", "requester": f"c{i}@example.com"}, actor="x")
    refused = "c1@example.com"
    with store.session() as s:
        claimed = outbound.claim(s, utcnow(), "d.example")
    sent_only = [(m["id"], None) for m in claimed if m["to"] != [refused]]
    with counted(store) as seen:
        counts = {"sent": 0, "retry": 0, "failed": 0}
        outbound._record(store, list(sent_only), utcnow(), counts)
    assert counts["sent"] == 2
    postgres = store.dialect == "postgresql"
    assert seen["commit"] == (0 if postgres else 1)
    assert [q.split()[0].upper() for q in seen["statements"]] == (
        ["UPDATE"] if postgres else ["BEGIN", "UPDATE"]
    )
    with counted(store) as seen:  # the refused one: read its attempts, write them, in a transaction
        counts = {"sent": 0, "retry": 0, "failed": 0}
        outbound._record(
            store, [(m["id"], "OSError: refused") for m in claimed if m["to"] == [refused]], utcnow(), counts
        )
    assert counts["retry"] == 1 and seen["commit"] == 1
    with store.session() as s:
        rows = {r.id: r for r in s.scalars(select(OutboxMessage))}
    assert sorted(i for i, r in rows.items() if r.delivered_at is not None) == sorted(i for i, _ in sent_only)
    assert all(rows[i].attempts == 1 and rows[i].last_error is None for i, _ in sent_only)


def test_a_mail_round_on_postgresql_runs_outside_transactions(store):
    """A round whose mails were all sent: PostgreSQL leases the due rows by the statement that
    finds them and commits nothing itself (no BEGIN and COMMIT); SQLite: the claim's
    transaction and the outcome's."""
    from triage.store import outbound
    from triage.store.intake import intake

    with store.session() as s:
        for i in range(4):
            intake(s, {"subject": f"s{i}", "body": "b", "requester": f"c{i}@example.com"}, actor="x")
    sent, autocommit = [], []

    def how(conn, *_args):  # psycopg sends BEGIN before a statement unless in autocommit
        autocommit.append(getattr(conn.connection.dbapi_connection, "autocommit", None))

    event.listen(store.engine, "before_cursor_execute", how)
    try:
        with counted(store) as seen:
            assert outbound.deliver(store, sent.append, domain="d.example")["sent"] == 4
    finally:
        event.remove(store.engine, "before_cursor_execute", how)
    postgres = store.dialect == "postgresql"
    if postgres:
        assert autocommit == [True] * 4
    else:
        assert seen["commit"] == 2
    words = [q.split()[0].upper() for q in seen["statements"]]
    # the lease with the rows; one read of their tickets' mail and comments and the receipts'
    # limit; the headers; the outcome (SQLite: BEGIN, the due rows, the read, the lease and
    # headers; BEGIN, the outcome)
    sqlite = ["BEGIN", "SELECT", "SELECT", "UPDATE", "BEGIN", "UPDATE"]
    assert words == (["WITH", "SELECT", "UPDATE", "UPDATE"] if postgres else sqlite)
    assert len({m["message_id"] for m in sent}) == 4
    with store.session() as s:
        rows = list(s.scalars(select(OutboxMessage)))
    assert all(r.delivered_at is not None and r.attempts == 1 for r in rows)
    assert sorted(r.message_id for r in rows) == sorted(m["message_id"] for m in sent)
