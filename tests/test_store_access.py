"""Who sees what: requesters their own tickets (others answer NotFound), agents their teams."""

from __future__ import annotations

import pytest

from triage.errors import NotFound
from triage.store import access, routing, tickets


def setup(s):
    routing.upsert_agent(s, "bob", teams=["Net"])
    mine, _ = tickets.create(s, {"subject": "mine", "requester": "ann@x"}, actor="ann@x")
    theirs, _ = tickets.create(s, {"subject": "theirs", "requester": "eve@x"}, actor="eve@x")
    hr, _ = tickets.create(s, {"subject": "hr", "requester": "eve@x"}, actor="eve@x")
    tickets.set_fields(s, mine, {"team": "Net", "queue": "Net"}, actor="x")
    tickets.set_fields(s, hr, {"team": "HR", "queue": "HR"}, actor="x")
    return mine, theirs, hr


def test_requester_sees_only_their_own_and_others_look_missing(store):
    with store.session() as s:
        mine, theirs, _ = setup(s)
        ann = access.viewer_for(s, "requester", "ann@x")
        assert access.visible(s, ann, mine.id).id == mine.id
        with pytest.raises(NotFound) as other:
            access.visible(s, ann, theirs.id)
        with pytest.raises(NotFound) as missing:
            access.visible(s, ann, 424242)
        assert other.value.status == missing.value.status == 404
        assert str(other.value) == f"ticket {theirs.id} not found"
        assert [t.id for t in access.list_visible(s, ann)] == [mine.id]


def test_agents_see_their_teams_and_the_triage_queue_admins_everything(store):
    with store.session() as s:
        mine, theirs, hr = setup(s)
        bob = access.viewer_for(s, "agent", "bob")
        assert bob.teams == frozenset({"Net"})
        assert {t.id for t in access.list_visible(s, bob)} == {mine.id, theirs.id}  # Net + triage
        with pytest.raises(NotFound):
            access.visible(s, bob, hr.id)
        with pytest.raises(NotFound):
            access.list_visible(s, bob, queue="HR")
        admin = access.viewer_for(s, "admin", "root")
        assert len(access.list_visible(s, admin)) == 3
        assert [t.id for t in access.list_visible(s, admin, queue="HR")] == [hr.id]


def test_a_requester_must_say_who_they_are(store):
    with store.session() as s:
        with pytest.raises(access.Forbidden):
            access.viewer_for(s, "requester", None)
        with pytest.raises(access.Forbidden):
            access.viewer_for(s, "wizard", "x")
        with pytest.raises(access.Forbidden):
            access.require_staff(access.Viewer("requester", "ann@x"))
