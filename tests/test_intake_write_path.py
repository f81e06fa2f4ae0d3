"""Intake's write path (Core statements, issue 15): what it writes is what the ORM path wrote,
without re-reading what it has just written."""

from __future__ import annotations


from sqlalchemy import select

from store_support import NOW, RULES, statements, sure_triager
from triage.store import clocks, tickets
from triage.store.intake import intake
from triage.store.tables import IdempotencyKey, OutboxMessage, SlaClockRow, TicketEvent

SURE = sure_triager()
PAYLOAD = {
    "subject": "VPN down",
    "body": "since 9",
    "requester": "ann@example.com",
    "affected_service": "vpn",
}


def test_the_received_notice_says_the_due_times_of_the_clocks_without_reading_them(store):
    with statements(store) as seen, store.session() as s:
        res = intake(
            s, dict(PAYLOAD), actor="ann", triager=SURE, ruleset=RULES, idempotency_key="k1", now=NOW
        )
    assert not [q for q in seen if q.startswith("select") and "sla_clocks" in q]
    assert not [q for q in seen if q.startswith("select") and "from outbox" in q]  # ON CONFLICT dedupes
    assert len([q for q in seen if q.startswith("update tickets")]) <= 1  # all field changes at once
    with store.session() as s:
        due = {
            c.kind: c.due_at
            for c in s.scalars(select(SlaClockRow).where(SlaClockRow.ticket_id == res.ticket.id))
        }
        mail = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == res.ticket.id)).one()
        assert mail.dedupe_key == f"received:{res.ticket.id}" and mail.payload["to"] == ["ann@example.com"]
        context = mail.payload["context"]
        assert context["first_response_due"] == due["first_response"].isoformat()
        assert context["resolution_due"] == due["resolution"].isoformat()
        assert (mail.attempts, mail.failed, mail.delivered_at) == (0, False, None)
        assert s.get(IdempotencyKey, "k1").ticket_id == res.ticket.id


def test_the_ticket_row_events_and_clocks_are_as_the_orm_would_have_written_them(store):
    with store.session() as s:
        res = intake(s, dict(PAYLOAD), actor="ann", triager=SURE, ruleset=RULES, now=NOW)
        ticket_id = res.ticket.id
    with store.session() as s:
        t = tickets.get(s, ticket_id)  # read back from the database, not the session
        assert (t.category, t.priority, t.team, t.queue, t.status) == ("Network", 2, "Net", "Net", "new")
        assert (t.escalation_level, t.extra, t.tags, t.created_at) == (0, {}, [], NOW)
        fields = [e.field for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id))]
        assert fields[0] == "created" and {"category", "priority", "team", "queue"} <= set(fields)
        assert {"sla.first_response", "sla.resolution"} <= set(fields)
        timed = clocks.clocks_of(s, ticket_id, NOW)
        assert {c["kind"] for c in timed} == {"first_response", "resolution"}
        # the Core-inserted clocks are ordinary rows: a priority change re-targets them
        before = {c["kind"]: c["due_at"] for c in timed}
        tickets.set_fields(s, t, {"priority": 4}, actor="agent", now=NOW)
        after = {c["kind"]: c["due_at"] for c in clocks.clocks_of(s, ticket_id, NOW)}
        assert after != before


def test_a_retried_key_answers_the_first_ticket_and_writes_nothing(store):
    with store.session() as s:
        first = intake(
            s, dict(PAYLOAD), actor="ann", triager=SURE, ruleset=RULES, idempotency_key="k", now=NOW
        )
    with statements(store) as seen, store.session() as s:
        again = intake(
            s, dict(PAYLOAD), actor="ann", triager=SURE, ruleset=RULES, idempotency_key="k", now=NOW
        )
    assert (again.created, again.ticket.id) == (False, first.ticket.id)
    assert not [q for q in seen if q.startswith(("update", "delete")) or q.startswith("insert into tickets")]


def test_the_received_notice_is_queued_once_per_ticket(store):
    from triage.store import notices

    with store.session() as s:
        res = intake(s, dict(PAYLOAD), actor="ann", triager=SURE, ruleset=RULES, now=NOW)
        notices.received(s, res.ticket, NOW)  # a second time, in the same transaction
    with store.session() as s:
        notices.received(s, tickets.get(s, res.ticket.id), NOW)  # and in another
    with store.session() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == res.ticket.id)).all()
        assert [r.dedupe_key for r in rows] == [f"received:{res.ticket.id}"]
