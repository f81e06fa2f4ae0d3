"""Feedback rows: an agent changing a predicted field leaves a labelled correction."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from triage.store import feedback, tickets
from triage.store.intake import intake

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


class FakeTriager:
    """Stands in for triage.predict.Triager: fixed answers in the contract's shape."""

    bundle_id = "20261127T0000Z-abc123"

    def __init__(self, fields):
        self.fields = fields

    def classify(self, items, policy=None):
        return [{"fields": self.fields, "bundle_id": self.bundle_id} for _ in items]


def pred(label, p, decision):
    return {"label": label, "probability": p, "decision": decision, "alternatives": [], "explanation": []}


TRI = FakeTriager(
    {
        "category": pred("Hardware", 0.97, "apply"),
        "priority": pred("2", 0.55, "suggest"),
        "team": pred("Desk", 0.30, "abstain"),
    }
)


def test_apply_sets_fields_suggest_and_abstain_stay_open_in_triage(store):
    with store.session() as s:
        res = intake(s, {"subject": "laptop dead", "requester": "ann@x"}, actor="ann@x", triager=TRI, now=NOW)
        t = res.ticket
        assert (t.category, t.priority, t.team, t.queue) == ("Hardware", None, None, "triage")
        assert res.open_fields == ["priority", "team"]
        actors = {e.field: e.actor for e in tickets.history(s, t.id)}
        assert actors["category"] == f"model:{TRI.bundle_id}"
        assert set(feedback.latest_predictions(s, t.id)) == {"category", "priority", "team"}


def test_agent_corrections_are_stored_with_prediction_bundle_and_confidence(store):
    with store.session() as s:
        t = intake(
            s, {"subject": "laptop dead", "requester": "ann@x"}, actor="ann@x", triager=TRI, now=NOW
        ).ticket
        tickets.edit(s, t, {"category": "Network", "priority": 2, "subject": "vpn"}, actor="bob", now=NOW)
        rows = [
            (f.head, f.predicted, f.corrected, f.decision, f.bundle_id, f.confidence, f.by)
            for f in feedback.for_ticket(s, t.id)
        ]
        assert rows == [
            ("category", "Hardware", "Network", "apply", TRI.bundle_id, 0.97, "bob"),
            ("priority", "2", "2", "suggest", TRI.bundle_id, 0.55, "bob"),
        ]
        assert feedback.export(s)[0]["corrected"] == "Network"


def test_changes_by_rules_or_to_unpredicted_fields_leave_no_feedback(store):
    with store.session() as s:
        t = intake(s, {"subject": "x"}, actor="ann@x", triager=TRI, now=NOW).ticket
        tickets.set_fields(s, t, {"category": "Network"}, actor="rules:vip")
        tickets.edit(s, t, {"affected_service": "vpn"}, actor="bob")
        assert feedback.for_ticket(s, t.id) == []


@pytest.mark.parametrize(
    "head,field",
    [("type", "ticket_type"), ("category", "category"), ("team", "team"), ("urgency", "urgency")],
)
def test_heads_map_to_ticket_fields(head, field):
    assert feedback.field_of(head) == field


def test_completing_a_triage_ticket_moves_it_to_its_team_queue(store):
    with store.session() as s:
        t = intake(
            s, {"subject": "laptop dead", "affected_service": "laptop"}, actor="ann@x", triager=TRI, now=NOW
        ).ticket
        assert t.queue == "triage"
        changed = tickets.edit(s, t, {"priority": 2, "team": "Desk"}, actor="bob", now=NOW)
        assert changed == ["priority", "team", "queue"] and t.queue == "Desk"
