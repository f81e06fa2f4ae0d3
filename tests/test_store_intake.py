"""Intake end to end in the store: model + rules + routing + clocks, idempotent under retries."""

from __future__ import annotations

import threading

import pytest

from store_support import NOW, RULES, sure_triager
from triage.store import clocks, routing, tickets
from triage.store.intake import intake

SURE = sure_triager()


def test_a_confident_ticket_is_classified_routed_assigned_and_timed(store):
    with store.session() as s:
        routing.upsert_agent(s, "bob", teams=["Net"], capacity=2)
        res = intake(
            s,
            {
                "subject": "VPN down",
                "body": "since 9",
                "requester": "ann@x",
                "affected_service": "vpn",
                "channel": "chat",
            },
            actor="ann@x",
            triager=SURE,
            ruleset=RULES,
            now=NOW,
        )
        t = res.ticket
        assert (t.category, t.priority, t.team, t.queue) == ("Network", 2, "Net", "Net")
        assert (t.status, t.assignee, res.team_source) == ("assigned", "bob", "model")
        assert {c["kind"] for c in clocks.clocks_of(s, t.id, NOW)} == {"first_response", "resolution"}
        assert res.to_dict()["ticket"]["channel"] == "chat"


def test_a_missing_mandatory_field_keeps_the_ticket_in_triage(store):
    with store.session() as s:
        res = intake(
            s,
            {"subject": "VPN down", "requester": "ann@x"},
            actor="ann@x",
            triager=SURE,
            ruleset=RULES,
            now=NOW,
        )
        assert (res.ticket.team, res.ticket.queue, res.ticket.status) == ("Net", "triage", "new")


def test_retried_intake_returns_the_first_ticket(store):
    with store.session() as s:
        first = intake(s, {"subject": "a"}, actor="x", idempotency_key="abc", now=NOW)
    with store.session() as s:
        again = intake(s, {"subject": "a"}, actor="x", idempotency_key="abc", now=NOW)
    assert first.created and not again.created and first.ticket.id == again.ticket.id


@pytest.mark.timeout(120)
def test_concurrent_retries_with_one_key_create_one_ticket(store):
    barrier, ids, errors = threading.Barrier(6), [], []

    def worker():
        barrier.wait(timeout=30)
        try:
            with store.session() as s:
                ids.append(
                    intake(
                        s, {"subject": "dup?"}, actor="x", ruleset=RULES, idempotency_key="same-key", now=NOW
                    ).ticket.id
                )
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors and len(set(ids)) == 1 and len(ids) == 6
    with store.session() as s:
        assert len(tickets.query(s)) == 1
