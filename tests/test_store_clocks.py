"""SLA clocks through the store, on business hours (the packaged policy's office-eu calendar).

NOW is Monday 2026-11-23 10:00 UTC = 11:00 in Berlin; office-eu works 08:00-18:00
Berlin time Monday to Thursday (17:00 on Friday).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from triage.rules import RuleSet
from triage.store import clocks, routing, tickets
from triage.store.intake import intake
from triage.store.tables import SlaClockRow

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RULES = RuleSet.load()


def open_ticket(session, when=NOW, priority=3, **extra):
    payload = {
        "subject": "VPN down",
        "body": "cannot connect",
        "requester": "ann@x.io",
        "category": "Network",
        "priority": priority,
        "affected_service": "vpn",
        "team": "Network",
        **extra,
    }
    return intake(session, payload, actor="ann@x.io", ruleset=RULES, now=when, auto_assign=False).ticket


def due(session, ticket, kind):
    row = session.query(SlaClockRow).filter_by(ticket_id=ticket.id, kind=kind).one()
    return row.due_at


def test_clocks_start_at_creation_from_the_policy(store):
    with store.session() as s:
        t = open_ticket(s)
        # P3 standard: 4h first response -> 15:00 Berlin = 14:00 UTC the same day
        assert due(s, t, clocks.FIRST_RESPONSE) == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
        # 40h resolution: 7h Monday, 10h Tue-Thu, 3h Friday -> Friday 11:00 Berlin
        assert due(s, t, clocks.RESOLUTION) == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
        kinds = {c["kind"]: c for c in clocks.clocks_of(s, t.id, NOW)}
        assert kinds["first_response"]["state"] == "running"
        assert kinds["first_response"]["policy"] == "standard"


def test_friday_afternoon_ticket_is_due_on_monday(store):
    friday = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # 16:30 Berlin, closes 17:00
    with store.session() as s:
        t = open_ticket(s, when=friday)
        # 30 min on Friday, 3h30 on Monday from 08:00 Berlin -> 11:30 Berlin = 10:30 UTC
        assert due(s, t, clocks.FIRST_RESPONSE) == datetime(2026, 11, 30, 10, 30, tzinfo=UTC)


def _assigned(s, t):
    routing.upsert_agent(s, "bob", teams=["Network"])
    routing.assign(s, t.id, actor="lead", agent_id="bob", now=NOW)


def test_pending_pauses_and_resuming_continues(store):
    with store.session() as s:
        t = open_ticket(s)
        _assigned(s, t)
        tickets.transition(s, t, "pending", actor="bob", now=NOW + timedelta(hours=1))
        row = s.query(SlaClockRow).filter_by(ticket_id=t.id, kind="first_response").one()
        assert row.paused and row.next_level_at is None
        # a whole night and morning waiting on the customer do not count
        tuesday = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 Berlin
        assert clocks.clocks_of(s, t.id, tuesday)[0]["elapsed_minutes"] == 60
        tickets.transition(s, t, "in_progress", actor="bob", now=tuesday)
        assert due(s, t, clocks.FIRST_RESPONSE) == tuesday + timedelta(hours=3)


def test_priority_change_retargets_the_remaining_time(store):
    with store.session() as s:
        t = open_ticket(s)
        one_hour_in = NOW + timedelta(hours=1)
        tickets.set_fields(s, t, {"priority": 2}, actor="bob", now=one_hour_in)
        # 1h of 4h used (75 % left) -> 75 % of the P2 target (1h) remains: 45 minutes
        assert due(s, t, clocks.FIRST_RESPONSE) == one_hour_in + timedelta(minutes=45)
        assert any(e.field == "sla.first_response" and e.old and e.new for e in tickets.history(s, t.id))


def test_first_public_agent_reply_stops_the_response_clock(store):
    with store.session() as s:
        t = open_ticket(s)
        tickets.add_comment(
            s, t, author="bob", body="note", public=False, by_agent=True, now=NOW + timedelta(minutes=10)
        )
        tickets.add_comment(s, t, author="bob", body="Hello!", by_agent=True, now=NOW + timedelta(minutes=30))
        states = {c["kind"]: c for c in clocks.clocks_of(s, t.id, NOW + timedelta(days=3))}
        assert states["first_response"]["state"] == "met"
        assert states["resolution"]["state"] == "running"


def test_resolving_stops_and_reopening_restarts_the_resolution_clock(store):
    with store.session() as s:
        t = open_ticket(s)
        _assigned(s, t)
        tickets.transition(s, t, "resolved", actor="bob", now=NOW + timedelta(hours=2))
        assert clocks.clocks_of(s, t.id, NOW + timedelta(days=30))[1]["state"] == "met"
        tickets.transition(s, t, "in_progress", actor="ann@x.io", now=NOW + timedelta(hours=5))
        res = clocks.clocks_of(s, t.id, NOW + timedelta(hours=6))[1]
        assert res["state"] == "running" and res["elapsed_minutes"] == 180  # 2h + 1h


def test_a_ticket_without_priority_is_timed_at_the_default_and_retargeted(store):
    with store.session() as s:
        t = intake(
            s, {"subject": "?", "requester": "ann@x.io"}, actor="ann@x.io", ruleset=RULES, now=NOW
        ).ticket
        assert t.priority is None and t.queue == "triage"
        assert due(s, t, clocks.FIRST_RESPONSE) == NOW + timedelta(hours=4)  # default P3
        tickets.set_fields(s, t, {"priority": 1}, actor="bob", now=NOW)
        assert due(s, t, clocks.FIRST_RESPONSE) == NOW + timedelta(minutes=30)


def test_breach_report_lists_over_time_clocks(store):
    with store.session() as s:
        late = open_ticket(s, priority=1)
        fine = open_ticket(s, priority=4)
    with store.session() as s:
        report = clocks.breaches(s, NOW + timedelta(hours=2))
        assert {(r["ticket_id"], r["clock"]) for r in report} == {(late.id, "first_response")}
        assert report[0]["overdue_minutes"] == pytest.approx(90)
        assert fine.id not in {r["ticket_id"] for r in report}


def test_merged_time_counts_as_a_pause_and_closed_tickets_leave_the_report(store):
    from triage.store import merge

    with store.session() as s:
        parent, child = open_ticket(s, priority=1), open_ticket(s, priority=1)
        merge.merge(s, child.id, parent.id, actor="bob", now=NOW + timedelta(minutes=10))
        assert {c["state"] for c in clocks.clocks_of(s, child.id, NOW + timedelta(hours=3))} == {"met"}
        assert child.id not in {r["ticket_id"] for r in clocks.breaches(s, NOW + timedelta(hours=3))}
        merge.unmerge(s, child.id, actor="bob", now=NOW + timedelta(hours=2))
        resp = clocks.clocks_of(s, child.id, NOW + timedelta(hours=2, minutes=5))[0]
        assert resp["state"] == "running" and resp["elapsed_minutes"] == 15  # 10 + 5


@pytest.mark.parametrize(
    "when",
    [
        NOW,
        datetime(2026, 11, 27, 15, 30, tzinfo=UTC),  # Friday afternoon: over the weekend
        datetime(2026, 11, 28, 12, 0, tzinfo=UTC),  # Saturday: closed
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # the night Berlin moves to summer time
        datetime(2026, 12, 24, 16, 59, 59, 999999, tzinfo=UTC),
    ],
)
@pytest.mark.parametrize("policy", sorted(RULES.policies))
def test_a_fresh_clock_is_stored_as_saving_the_started_clock_stores_it(policy, when):
    """A new ticket's clocks skip asking the clock what it says at its own start: the row
    must be the one the general path (_save) writes, on every calendar and start time."""
    pol = RULES.policies[policy]
    levels = RULES.escalation_levels or clocks.DEFAULT_LEVELS
    ordered = sorted(levels, key=lambda lv: lv.at)
    for target in pol.targets:
        for kind in clocks.KINDS:
            state = {
                "targets": {"3": getattr(target, kind)},
                "fired": [],
                "levels": [[lv.name, lv.at] for lv in ordered],
            }
            clock = clocks.Clock.start(when, getattr(target, kind), pol.calendar, name=kind)
            general = SlaClockRow(ticket_id=7, kind=kind, policy=pol.name, state=state)
            clocks._save(general, clock, when)
            fast = clocks._started(7, kind, pol.name, state, clock, ordered[0])
            assert fast == {name: getattr(general, name) for name in fast}, (policy, kind, target)
            assert set(fast) == {c.key for c in SlaClockRow.__table__.columns} - {"id"}
