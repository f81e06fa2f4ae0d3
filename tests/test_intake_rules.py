"""Intake acts on what the model knows: predicted.* in the rules, one rules input, re-runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from test_store_feedback import FakeTriager, pred
from triage.configfile import loads_yaml
from triage.desk import load_desk
from triage.errors import ConfigError
from triage.rule_input import rule_input, ticket_known, with_desk_teams
from triage.rules import RuleSet
from triage.store import clocks, tickets
from triage.store import desk as store_desk
from triage.store.intake import intake, rerun_rules
from triage.store.tables import TicketEvent

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)  # a Monday, office hours
RULES = RuleSet.load()
VPN = {
    "subject": "VPN down",
    "body": "The VPN is down for the whole Lyon office, nobody can work",
    "requester": "ann@acme.example",
    "affected_service": "VPN",
}
# The model is fairly sure of an urgent network ticket, not sure enough to write the fields.
SUGGESTS_P1 = FakeTriager(
    {
        "priority": pred("P1", 0.62, "suggest"),
        "team": pred("Network", 0.71, "suggest"),
        "category": pred("Network", 0.80, "suggest"),
        "type": pred("incident", 0.97, "apply"),
    }
)


def _demo_desk(session):
    store_desk.apply(session, load_desk(ROOT / "data" / "demo" / "desk.yaml"), actor="t", source="t")


def _events(session, ticket_id, field):
    return list(
        session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, TicketEvent.field == field)
        )
    )


def test_rules_see_predicted_label_decision_and_probability():
    fields = rule_input(
        {"subject": "s", "body": "b", "priority": None, "type": "incident"}, SUGGESTS_P1.classify([None])[0]
    )
    assert fields["predicted.priority"] == "P1"
    assert fields["predicted.priority.decision"] == "suggest"
    assert fields["predicted.priority.probability"] == pytest.approx(0.62)
    assert "priority" not in fields  # a suggestion is not a value
    assert fields["type"] == "incident"  # given; and the applied type would not overrule it
    assert fields["text"] == "s b"


def test_a_rule_on_a_predicted_field_validates_like_any_other(tmp_path):
    bad = tmp_path / "r.yaml"
    text = (ROOT / "triage" / "defaults" / "rules.yaml").read_text()
    bad.write_text(
        text.replace(
            "{field: predicted.priority.probability, gte: 0.5}",
            "{field: predicted.priority.confidence, gte: 0.3}",
        )
    )
    with pytest.raises(ConfigError, match="predicted.priority.confidence"):
        RuleSet.load(bad)
    bad.write_text(
        text.replace(
            "{field: predicted.priority.probability, gte: 0.5}",
            "{field: predicted.priority.probability, gte: high}",
        )
    )
    with pytest.raises(ConfigError, match="expected float"):
        RuleSet.load(bad)


def test_suggested_outage_is_escalated_routed_and_given_to_a_senior_agent(store):
    with store.session() as s:
        _demo_desk(s)
        res = intake(s, dict(VPN), actor="ann", triager=SUGGESTS_P1, ruleset=RULES, now=NOW)
        t = res.ticket
        assert t.priority in (1, 2) and t.team == "Network" and t.queue == "Network"
        assert t.assignee == "nina"  # the senior Network agent, not the less loaded regular one
        assert {"suggested-urgent", "outage"} <= set(res.rules["fired"]) and res.rules["escalate"]
        assert t.status == "assigned"  # complete (affected_service given): it left "new"
        assert _events(s, t.id, "escalate")
        assert clocks.clocks_of(s, t.id, NOW)[0]["policy"] in ("standard", "vip", "major-incident")


def test_a_weak_suggestion_without_outage_words_waits_for_a_person(store):
    weak = FakeTriager({"priority": pred("P1", 0.35, "suggest"), "team": pred("Network", 0.71, "suggest")})
    with store.session() as s:
        _demo_desk(s)
        res = intake(
            s,
            {**VPN, "subject": "VPN profile", "body": "my VPN profile needs renewing next week"},
            actor="ann",
            triager=weak,
            ruleset=RULES,
            now=NOW,
        )
        assert res.ticket.priority is None and res.ticket.queue == "triage"
        assert not _events(s, res.ticket.id, "escalate")


def test_a_confident_p1_suggestion_is_taken_and_escalated(store):
    with store.session() as s:
        _demo_desk(s)
        res = intake(
            s,
            {**VPN, "subject": "VPN profile", "body": "VPN profile broken"},
            actor="ann",
            triager=SUGGESTS_P1,
            ruleset=RULES,
            now=NOW,
        )
        assert res.ticket.priority == 1 and "suggested-urgent" in res.ticket.tags
        assert {"suggested-urgent", "p1-escalate"} <= set(res.rules["fired"])
        assert _events(s, res.ticket.id, "escalate")


def test_an_outage_missing_fields_still_reaches_a_senior_agent_at_once(store):
    unsure = FakeTriager(
        {
            "priority": pred("P3", 0.85, "abstain"),
            "team": pred("Network", 0.90, "suggest"),
            "category": pred("Network", 0.90, "suggest"),
        }
    )
    with store.session() as s:
        _demo_desk(s)
        res = intake(s, {"body": VPN["body"]}, actor="ann", triager=unsure, ruleset=RULES, now=NOW)
        t = res.ticket
        assert (t.priority, t.team, t.queue, t.assignee) == (2, "Network", "Network", "nina")
        assert t.status == "new" and tickets.missing_mandatory(t) == ["affected_service"]
        tickets.edit(s, t, {"affected_service": "VPN"}, actor="nina", now=NOW)
        from triage.store import routing

        routing.assign(s, t.id, actor="nina", agent_id="nina", now=NOW)  # "Claim"
        assert t.status == "assigned"


def test_accepting_p1_reruns_the_rules_escalates_tags_and_retimes(store):
    quiet = FakeTriager(
        {
            "priority": pred("P1", 0.45, "suggest"),
            "category": pred("Network", 0.99, "apply"),
            "team": pred("Network", 0.99, "apply"),
        }
    )
    with store.session() as s:
        _demo_desk(s)
        res = intake(
            s,
            {**VPN, "subject": "VPN slow", "body": "VPN slow this morning"},
            actor="ann",
            triager=quiet,
            ruleset=RULES,
            now=NOW,
        )
        t = res.ticket
        assert t.priority is None and not _events(s, t.id, "escalate")
        due_before = {c["kind"]: c["due_at"] for c in clocks.clocks_of(s, t.id, NOW)}
        changed = tickets.edit(s, t, {"priority": 1}, actor="nina", now=NOW)
        out = rerun_rules(s, t, RULES, actor="nina", now=NOW)
        assert "p1-escalate" in out["fired"] and "p1" in t.tags and changed
        assert _events(s, t.id, "escalate")
        due_after = {c["kind"]: c["due_at"] for c in clocks.clocks_of(s, t.id, NOW)}
        assert due_after["first_response"] < due_before["first_response"]
        # a second re-run escalates no second time
        rerun_rules(s, t, RULES, actor="nina", now=NOW)
        assert len(_events(s, t.id, "escalate")) == 1


def test_rules_input_of_a_stored_ticket_equals_the_classify_input(store):
    """The parity the rules rely on, at the level of the function both paths call."""
    with store.session() as s:
        res = intake(
            s, {**VPN, "customer_tier": "gold"}, actor="ann", triager=SUGGESTS_P1, ruleset=None, now=NOW
        )
        stored = rule_input(ticket_known(res.ticket), res.prediction)
    given = {**VPN, "customer_tier": "gold", "channel": "api"}
    assert rule_input(given, SUGGESTS_P1.classify([None])[0]) == stored


def test_team_map_renames_model_labels_for_rules_and_routing():
    prediction = {"fields": {"team": pred("Networking", 0.99, "apply")}}
    seen = with_desk_teams(prediction, {"Networking": "Network"})
    assert seen["fields"]["team"]["label"] == "Network"
    assert prediction["fields"]["team"]["label"] == "Networking"  # the stored view is kept
    assert loads_yaml("a: 1")["a"] == 1


def test_priority_can_follow_the_target_teams_queue_depth_and_backlog_age(store, tmp_path):
    text = (ROOT / "triage" / "defaults" / "rules.yaml").read_text()
    busy = text.replace(
        "rules:\n",
        """rules:
  - name: busy-queue
    description: A deep or old backlog in the target team raises priority.
    when:
      all:
        - any:
            - {field: team.backlog, gte: 2}
            - {field: team.oldest_hours, gte: 48}
        - {field: priority, gte: 3}
    then: {raise_priority: 2, add_tags: [busy-queue]}
""",
        1,
    ).replace("rules:\n  - name: busy-queue", "rules:\n  - name: busy-queue", 1)
    path = tmp_path / "rules.yaml"
    path.write_text(busy)
    rules = RuleSet.load(path)
    assert rules.reads_team_state and not RULES.reads_team_state
    base = {
        "subject": "Printer",
        "body": "jams",
        "affected_service": "Printing",
        "category": "Hardware",
        "team": "End-User Computing",
        "priority": 3,
    }
    with store.session() as s:
        _demo_desk(s)
        first = intake(s, dict(base), actor="a", ruleset=rules, now=NOW).ticket
        second = intake(s, dict(base), actor="a", ruleset=rules, now=NOW).ticket
        third = intake(s, dict(base), actor="a", ruleset=rules, now=NOW).ticket
        assert (first.priority, second.priority, third.priority) == (3, 3, 2)
        assert "busy-queue" in third.tags
        other = intake(
            s, {**base, "team": "HR Systems"}, actor="a", ruleset=rules, now=NOW + timedelta(days=3)
        ).ticket
        assert other.priority == 3  # an empty queue elsewhere
        late = intake(s, dict(base), actor="a", ruleset=rules, now=NOW + timedelta(days=3)).ticket
        assert late.priority == 2  # the oldest open one is 72 hours old


def test_a_vip_during_an_open_major_incident_is_raised_linked_and_given_a_senior(store):
    from triage.store import merge

    base = {
        "subject": "VPN",
        "body": "cannot connect to the VPN",
        "affected_service": "VPN",
        "category": "Network",
        "team": "Network",
        "priority": 3,
    }
    with store.session() as s:
        _demo_desk(s)
        parent = intake(
            s,
            {**base, "subject": "VPN concentrator failed", "priority": 1},
            actor="noc",
            ruleset=RULES,
            now=NOW,
        ).ticket
        child = intake(s, dict(base), actor="a", ruleset=RULES, now=NOW).ticket
        merge.link_incident(s, child.id, parent.id, actor="noc", now=NOW)
        plain = intake(s, dict(base), actor="b", ruleset=RULES, now=NOW).ticket
        assert merge.active_link(s, plain.id, merge.PARENT_INCIDENT) is None  # not a VIP
        vip = intake(
            s,
            {**base, "customer_tier": "vip", "team": None, "category": None, "priority": None},
            actor="ceo",
            ruleset=RULES,
            now=NOW,
        ).ticket
        link = merge.active_link(s, vip.id, merge.PARENT_INCIDENT)
        assert link is not None and link.target_id == parent.id
        assert vip.priority == 1 and "major-incident" in vip.tags
        assert _events(s, vip.id, "escalate")
        assert (vip.team, vip.queue, vip.assignee) == ("Network", "Network", "nina")
        policies = {c["policy"] for c in clocks.clocks_of(s, vip.id, NOW)}
        assert policies == {"major-incident"}


def test_incident_proposals_are_stored_listed_accepted_or_declined(store):
    from triage.errors import TransitionError
    from triage.store import merge, proposals

    with store.session() as s:
        ids = [
            intake(s, {"subject": f"Teams down {i}", "requester": f"u{i}@x"}, actor="t", now=NOW).ticket.id
            for i in range(4)
        ]
        first = proposals.record(
            s, {"parent": ids[0], "members": ids[:3], "label": "teams", "cohesion": 0.9}, now=NOW
        )
        again = proposals.record(s, {"parent": ids[0], "members": ids, "label": "teams"}, now=NOW)
        assert first.id == again.id and again.data["members"] == sorted(ids)  # one, growing
        listed = proposals.open_proposals(s)
        assert [p["parent"] for p in listed] == [ids[0]] and listed[0]["size"] == 4
        out = proposals.accept(s, first.id, actor="nina", now=NOW)
        assert sorted(out["linked"]) == sorted(ids[1:])
        assert all(merge.active_link(s, i, merge.PARENT_INCIDENT).target_id == ids[0] for i in ids[1:])
        assert "major-incident" in tickets.get(s, ids[0]).tags
        assert proposals.open_proposals(s) == []
        with pytest.raises(TransitionError):
            proposals.decline(s, first.id, actor="nina", now=NOW)
        other = proposals.record(s, {"parent": ids[3], "members": [ids[3]]}, now=NOW)
        assert proposals.decline(s, other.id, actor="leo", now=NOW)["status"] == "declined"


def test_a_rule_never_accepts_a_label_the_model_abstains_on():
    """The outage rule takes suggested team and category, but not a team the model declines."""
    now = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    known = {"subject": VPN["subject"], "body": VPN["body"], "priority": None}
    abstains = FakeTriager({**SUGGESTS_P1.fields, "team": pred("HR Systems", 0.06, "abstain")})
    outcome = RULES.evaluate(rule_input(known, abstains.classify([None])[0]), now)
    assert "outage" in outcome.fired
    assert "team" not in outcome.accepted and outcome.team != "HR Systems"
    assert "category" in outcome.accepted  # a suggestion is still taken
    suggested = RULES.evaluate(rule_input(known, SUGGESTS_P1.classify([None])[0]), now)
    assert "team" in suggested.accepted and suggested.team == "Network"
