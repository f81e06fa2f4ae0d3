"""Near-duplicates offered and bursts proposed at intake (HashingEncoder: no model weights)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from store_support import store, backend  # noqa: F401 - fixtures
from triage.encoder import HashingEncoder
from triage.store.intake import intake

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
ENC = HashingEncoder()


def send(s, subject, requester="ann@x", at=NOW, body="cannot connect since this morning"):
    return intake(s, {"subject": subject, "body": body, "requester": requester}, actor=requester,
                  encoder=ENC, now=at)


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
        results = [send(s, "VPN down", requester=f"u{i}@x", at=NOW + timedelta(minutes=i))
                   for i in range(5)]
        assert results[3].incident is None
        proposal = results[4].incident
        assert proposal["size"] == 5
        assert set(proposal["members"]) == {r.ticket.id for r in results}
        assert proposal["parent"] in proposal["members"]
