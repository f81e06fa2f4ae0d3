"""Near-duplicates offered and bursts proposed at intake (HashingEncoder: no model weights)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from triage import ann
from triage.encoder import HashingEncoder
from triage.store import Store, similar, tickets
from triage.store.intake import intake
from triage.store.tables import TicketRow

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
ENC = HashingEncoder()


def send(s, subject, requester="ann@x", at=NOW, body="cannot connect since this morning"):
    return intake(
        s, {"subject": subject, "body": body, "requester": requester}, actor=requester, encoder=ENC, now=at
    )


def test_a_repeated_request_is_offered_as_a_duplicate(store):
    with store.session() as s:
        first = send(s, "VPN down").ticket
        other = send(s, "Payroll question", body="when is the salary paid").ticket
        again = send(s, "VPN down", at=NOW + timedelta(hours=1))
        offered = [d["ticket_id"] for d in again.duplicates]
        assert offered == [first.id] and other.id not in offered
        assert "same requester" in again.duplicates[0]["reasons"]
        late = send(s, "VPN down", at=NOW + timedelta(days=30))  # outside the window
        assert late.duplicates == []


def test_a_burst_of_similar_tickets_proposes_a_major_incident(store):
    with store.session() as s:
        results = [send(s, "VPN down", requester=f"u{i}@x", at=NOW + timedelta(minutes=i)) for i in range(5)]
        assert results[3].incident is None
        proposal = results[4].incident
        assert proposal["size"] == 5
        assert set(proposal["members"]) == {r.ticket.id for r in results}
        assert proposal["parent"] in proposal["members"]


# ------------------------------------------------------------ the open-ticket index
TOPICS = [
    "VPN down",
    "Payroll question",
    "Printer jams on floor 3",
    "Password expired",
    "Outlook calendar crashes",
    "Need access to the finance share",
    "Laptop battery",
    "Teams audio echo",
    "Badge does not open door",
    "Monitor flickers",
]


@pytest.fixture
def graph_index(monkeypatch):
    """Past a tiny threshold, so the usearch graph (not the exact scan) answers."""
    monkeypatch.setattr(ann, "EXACT_BELOW", 4)


def test_the_index_offers_the_same_duplicate_past_its_exact_threshold(store, graph_index):
    with store.session() as s:
        firsts = {
            t: send(s, t, requester=f"{i}@x", body=f"{t} details").ticket.id for i, t in enumerate(TOPICS)
        }
    with store.session() as s:
        again = send(
            s,
            "Printer jams on floor 3",
            requester="9@x",
            body="Printer jams on floor 3 details",
            at=NOW + timedelta(hours=1),
        )
        assert again.duplicates[0]["ticket_id"] == firsts["Printer jams on floor 3"]
        kept = similar._open_tickets(
            s, similar.encoder_name(ENC), ENC.dim, again.ticket.created_at, again.ticket.id
        )
        assert kept.index.approximate and len(kept.index) >= len(TOPICS)


def test_a_ticket_closed_since_it_was_indexed_is_no_longer_offered(store, graph_index):
    with store.session() as s:
        first = send(s, "VPN down").ticket
        for i, t in enumerate(TOPICS[1:6]):
            send(s, t, requester=f"{i}@x", body=f"{t} details")
    with store.session() as s:
        assert [d["ticket_id"] for d in send(s, "VPN down", at=NOW + timedelta(hours=1)).duplicates][:1] == [
            first.id
        ]
        ticket = s.get(TicketRow, first.id)
        tickets.set_fields(
            s,
            ticket,
            {"category": "Network", "priority": "3", "affected_service": "VPN"},
            actor="agent@x",
            now=NOW + timedelta(hours=2),
        )
        tickets.transition(s, ticket, "resolved", actor="agent@x", now=NOW + timedelta(hours=2))
    with store.session() as s:
        later = send(s, "VPN down", requester="z@x", at=NOW + timedelta(hours=3))
        assert first.id not in [d["ticket_id"] for d in later.duplicates]


def test_a_ticket_stored_by_another_process_is_found(store, graph_index):
    """Each process keeps its own index; a second engine on the same database is another
    process's view: what it stores is caught up by the next query here."""
    with store.session() as s:
        for i, t in enumerate(TOPICS):
            send(s, t, requester=f"{i}@x", body=f"{t} details")
    other = Store(store.url, schema=store.schema)
    try:
        with other.session() as s:
            theirs = send(
                s, "Badge reader broken at the north entrance", requester="o@x", body="badge reader beeps red"
            ).ticket.id
    finally:
        other.dispose()
    with store.session() as s:
        mine = send(
            s,
            "Badge reader broken at the north entrance",
            requester="p@x",
            body="badge reader beeps red",
            at=NOW + timedelta(minutes=5),
        )
        assert mine.duplicates and mine.duplicates[0]["ticket_id"] == theirs
