"""Merging duplicates (and undoing it), parent incidents, resolving children."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from triage.errors import TransitionError
from triage.store import merge, tickets

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
COMPLETE = {"category": "Network", "priority": 3, "affected_service": "vpn"}


def pair(s):
    parent, _ = tickets.create(
        s, {"subject": "VPN down", "requester": "ann@x", "watchers": ["ops@x"]}, actor="ann@x", now=NOW
    )
    child, _ = tickets.create(
        s,
        {"subject": "vpn broken?", "requester": "bob@x", "watchers": ["ops@x", "boss@x"]},
        actor="bob@x",
        now=NOW,
    )
    tickets.add_comment(s, parent, author="ann@x", body="p1", now=NOW)
    tickets.add_comment(s, child, author="bob@x", body="c1", message_id="<c1@x>", now=NOW)
    tickets.add_comment(s, child, author="bob@x", body="c2", now=NOW)
    return parent, child


def snapshot(s, ticket_id):
    t = tickets.get(s, ticket_id)
    return (
        t.status,
        t.resolution,
        [c.body for c in tickets.comments(s, ticket_id)],
        sorted(tickets.watchers(s, ticket_id)),
    )


def test_merge_moves_followups_and_watchers_and_closes_the_child(store):
    with store.session() as s:
        parent, child = pair(s)
        before = (snapshot(s, parent.id), snapshot(s, child.id))
        merge.merge(s, child.id, parent.id, actor="agent", now=NOW)
        assert snapshot(s, child.id) == ("closed", "duplicate", [], ["ops@x"])
        p = snapshot(s, parent.id)
        assert p[2] == ["p1", "c1", "c2"] and p[3] == ["bob@x", "boss@x", "ops@x"]
        assert [e.field for e in tickets.history(s, child.id)][-1] == "merged_into"
        merge.unmerge(s, child.id, actor="agent", now=NOW)
        assert (snapshot(s, parent.id), snapshot(s, child.id)) == before


def test_merge_refuses_self_twice_and_into_closed(store):
    with store.session() as s:
        parent, child = pair(s)
        other, _ = tickets.create(s, {"subject": "x"}, actor="x")
        with pytest.raises(TransitionError, match="itself"):
            merge.merge(s, parent.id, parent.id, actor="a")
        merge.merge(s, child.id, parent.id, actor="a")
        with pytest.raises(TransitionError, match="already merged"):
            merge.merge(s, child.id, other.id, actor="a")
        with pytest.raises(TransitionError, match="closed or merged"):
            merge.merge(s, other.id, child.id, actor="a")
        merge.unmerge(s, child.id, actor="a")
        with pytest.raises(TransitionError, match="not merged"):
            merge.unmerge(s, child.id, actor="a")


def test_unmerge_keeps_what_the_parent_gained_since(store):
    with store.session() as s:
        parent, child = pair(s)
        merge.merge(s, child.id, parent.id, actor="a", now=NOW)
        tickets.add_comment(s, parent, author="agent", body="after", by_agent=True, now=NOW)
        merge.unmerge(s, child.id, actor="a", now=NOW)
        assert [c.body for c in tickets.comments(s, parent.id)] == ["p1", "after"]
        assert tickets.get(s, child.id).status == "new"


def test_resolving_a_parent_incident_resolves_its_children(store):
    with store.session() as s:
        parent, _ = tickets.create(s, {"subject": "outage"}, actor="x", now=NOW)
        kids = [tickets.create(s, {"subject": f"k{i}"}, actor="x", now=NOW)[0] for i in range(3)]
        for kid in kids[:2]:
            tickets.set_fields(s, kid, COMPLETE, actor="x")
        for kid in kids:
            merge.link_incident(s, kid.id, parent.id, actor="lead", now=NOW)
        assert [k.id for k in merge.children(s, parent.id)] == [k.id for k in kids]
        tickets.set_fields(s, parent, COMPLETE, actor="x")
        tickets.transition(s, parent, "resolved", actor="lead", now=NOW)
        result = merge.resolve_children(s, parent, actor="lead", now=NOW)
        assert result == {"resolved": [kids[0].id, kids[1].id], "skipped": [kids[2].id]}
        assert tickets.get(s, kids[0].id).resolution == f"parent_resolved:{parent.id}"
        assert tickets.get(s, kids[2].id).status == "new"  # incomplete: left for a person


def test_incident_links_refuse_self_and_nesting_and_can_be_removed(store):
    with store.session() as s:
        a, b, c = (tickets.create(s, {"subject": n}, actor="x")[0] for n in "abc")
        with pytest.raises(TransitionError, match="own parent"):
            merge.link_incident(s, a.id, a.id, actor="x")
        merge.link_incident(s, b.id, a.id, actor="x")
        with pytest.raises(TransitionError, match="itself a child"):
            merge.link_incident(s, c.id, b.id, actor="x")
        merge.unlink_incident(s, b.id, actor="x")
        assert merge.children(s, a.id) == []
        assert [k["kind"] for k in merge.links_of(s, a.id)] == ["parent_incident"]
