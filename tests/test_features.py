"""Context features: requester history is built only from earlier tickets, and one builder
serves training and the service."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from triage.features import (
    available_groups,
    context_strings,
    context_tokens,
    requester_history,
    ticket_context,
)
from triage.ticket import Ticket

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


def test_history_holds_only_strictly_earlier_tickets_of_the_same_requester():
    requesters = ["ann", "bob", "ann", "ANN ", "ann", None]
    times = [
        T0,
        T0,
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
        T0 + timedelta(hours=2),
        T0 + timedelta(hours=3),
    ]
    labels = {"team": ["net", "hr", "mail", "desk", "erp", "net"], "category": [None] * 6}
    hist = requester_history(requesters, times, labels)
    assert hist[0] == {"team": [], "category": []}  # ann's first ticket: nothing before
    assert hist[1]["team"] == []  # bob never asked before
    assert hist[2]["team"] == ["net"]  # only the 09:00 ticket
    # 11:00 twice: neither sees the other (the same instant is not "before"), nor itself
    assert hist[3]["team"] == ["mail", "net"] and hist[4]["team"] == ["mail", "net"]
    assert hist[5] == {}  # unknown requester: no history


def test_changing_a_later_ticket_never_changes_an_earlier_tickets_features():
    """The leak test: a ticket's features are a function of strictly earlier tickets only."""
    rng = random.Random(7)
    n = 300
    requesters = [f"user{rng.randint(0, 25)}" for _ in range(n)]
    times = [T0 + timedelta(minutes=rng.randint(0, 5000)) for _ in range(n)]
    teams = [rng.choice(["net", "hr", "mail", "desk"]) for _ in range(n)]
    meta = {"requester": requesters, "created_at": times, "channel": ["email"] * n}
    before = context_strings(meta, n, requester_history(requesters, times, {"team": teams}))
    for i in rng.sample(range(n), 20):
        changed = list(teams)
        changed[i] = "CHANGED"
        after = context_strings(meta, n, requester_history(requesters, times, {"team": changed}))
        for j in range(n):
            if requesters[j] == requesters[i] and times[i] < times[j]:
                continue  # a later ticket of the same requester may see it: that is history
            assert after[j] == before[j], (i, j)
        assert after[i] == before[i]  # its own label never reaches its own features


def test_context_tokens_and_the_service_builder_agree_with_training():
    hist = {"team": ["Network", "Network", "Service Desk"]}
    train_side = context_strings(
        {"channel": ["email"], "customer_tier": ["Gold"], "affected_service": ["Laptop fleet"]}, 1, [hist]
    )[0]
    ticket = Ticket(
        subject="x", body="y", channel="email", customer_tier="Gold", affected_service="Laptop fleet"
    )
    assert (
        ticket_context(ticket, hist, ("channel", "customer_tier", "affected_service", "history"))
        == train_side
    )
    tokens = train_side.split()
    assert {
        "channel=email",
        "customer_tier=gold",
        "affected_service=laptop_fleet",
        "history.team=network",
        "history.team=service_desk",
        "history.team.last=network",
    } == set(tokens)
    assert context_tokens(channel="web", history=hist, groups=("channel",)) == "channel=web"


def test_available_groups_need_values_and_history_needs_requester_and_time():
    assert available_groups({"channel": [None, ""], "customer_tier": ["vip"]}) == ("customer_tier",)
    assert available_groups({"requester": ["a"], "created_at": [T0]}) == ("history",)
    assert available_groups({"requester": ["a"]}) == ()


class HistoryTriager:
    """Records the histories intake hands to a triager whose heads use requester history."""

    bundle_id = "history-test"
    uses_history = True

    def __init__(self) -> None:
        self.seen: list = []

    def classify(self, items, policy=None, histories=None, **_):
        self.seen.append(histories)
        return [{"fields": {}, "bundle_id": self.bundle_id} for _ in items]


def test_intake_hands_the_model_only_the_requesters_earlier_stored_tickets(store):
    from triage.store.intake import intake, requester_history

    tri = HistoryTriager()
    with store.session() as s:
        for hours, team, who in (
            (1, "Network", "ann@x"),
            (2, "Service Desk", "Ann@X"),
            (3, "HR Systems", "bob@x"),
        ):
            intake(
                s,
                {"subject": f"t{hours}", "body": "b", "requester": who, "team": team},
                actor=who,
                now=T0 + timedelta(hours=hours),
            )
        intake(
            s,
            {"subject": "new", "body": "b", "requester": "ann@x"},
            actor="ann@x",
            triager=tri,
            now=T0 + timedelta(hours=4),
        )
        assert tri.seen[-1] == [{"team": ["Service Desk", "Network"], "category": [], "type": []}]
        # tickets at or after the moment asked about are not history
        assert requester_history(s, "ann@x", T0 + timedelta(hours=2))["team"] == ["Network"]
        assert requester_history(s, "nobody@x", T0 + timedelta(hours=9)) == {
            "team": [],
            "category": [],
            "type": [],
        }
