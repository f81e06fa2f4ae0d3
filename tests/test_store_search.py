"""Ticket search: full text (SQLite FTS5 / PostgreSQL), filters, sorting, paging, visibility."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from triage.errors import InputError
from triage.store import access, search, tickets

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
TEXTS = [
    ("Printer offline", "The printers on floor 2 show offline since the update"),
    ("VPN drops", "The VPN client disconnects every five minutes"),
    ("Password expired", "My password expired and the reset link fails"),
    ("Printer jam", "Paper jam in the printer near reception"),
    ("Quote 'odd' \"chars\" * NEAR -x", "body with AND OR NOT operators: nothing special"),
]


def _seed(s):
    ids = []
    for i, (subject, body) in enumerate(TEXTS):
        row, _ = tickets.create(
            s,
            {"subject": subject, "body": body, "requester": f"u{i}@x"},
            actor="t",
            now=T0 + timedelta(minutes=i),
        )
        tickets.set_fields(
            s,
            row,
            {"team": "Net" if "VPN" in subject else "Desk", "priority": 1 + i % 3},
            actor="t",
            retime=False,
        )
        ids.append(row.id)
    s.flush()
    return ids


def test_full_text_and_like_scan_find_the_same_tickets(store):
    with store.session() as s:
        ids = _seed(s)
        assert search.has_fulltext(s)
        for q in (
            "printer",
            "printers offline",
            "offline printer",
            "VPN",
            "passw",
            "reset link",
            "nothing-at-all-matches",
        ):
            fts = {t.id for t in search.find(s, q=q, limit=50).items}
            like = {t.id for t in search.find(s, q=q, limit=50, method="like").items}
            assert fts >= like, q  # stemming may find more ("printers" ~ "printer"), never less
        # what the user types never reaches the query syntax: operators are plain words
        assert {t.id for t in search.find(s, q="'odd' * NEAR").items} == {ids[4]}
        # (PostgreSQL drops English stop words such as "and", "or": no match, and no error)
        assert {t.id for t in search.find(s, q="AND OR").items} <= {ids[4]}
        assert {t.id for t in search.find(s, q="printer").items} == {ids[0], ids[3]}
        assert {t.id for t in search.find(s, q="printer jam").items} == {ids[3]}
        assert {t.id for t in search.find(s, q="passw").items} == {ids[2]}  # prefix of last word


def test_search_follows_edits_and_pages_with_a_total(store):
    with store.session() as s:
        ids = _seed(s)
        row = tickets.get(s, ids[1])
        row.body = "Now about a broken printer instead"
        s.flush()
        hits = search.find(s, q="printer", sort="-created", limit=2)
        assert hits.total == 3 and [t.id for t in hits.items] == [ids[3], ids[1]]
        assert hits.next_offset == 2
        rest = search.find(s, q="printer", sort="-created", limit=2, offset=2)
        assert [t.id for t in rest.items] == [ids[0]] and rest.next_offset is None
        assert search.find(s, q="disconnects").total == 0


def test_filters_sorting_and_visibility(store):
    with store.session() as s:
        ids = _seed(s)
        assert [t.id for t in search.find(s, team="Net").items] == [ids[1]]
        assert [t.priority for t in search.find(s, sort="priority").items] == [1, 1, 2, 2, 3]
        assert search.find(s, priority=3).total == 1
        assert search.find(s, assignee="none").total == 5
        viewer = access.Viewer("agent", "bob", frozenset({"Net"}))
        s.flush()
        # seeded in the triage queue, which every agent sees
        assert search.find(s, visible_to=viewer).total == 5
        for tid in ids:
            tickets.set_fields(
                s, tickets.get(s, tid), {"queue": tickets.get(s, tid).team}, actor="t", retime=False
            )
        assert [t.id for t in search.find(s, visible_to=viewer).items] == [ids[1]]
        requester = access.Viewer("requester", "u2@x")
        assert [t.id for t in search.find(s, visible_to=requester).items] == [ids[2]]
        with pytest.raises(InputError):
            search.find(s, sort="nonsense")


def test_counts_stop_at_the_cap_and_paging_goes_on(store, monkeypatch):
    monkeypatch.setattr(search, "COUNT_CAP", 3)
    with store.session() as s:
        _seed(s)
        first = search.find(s, limit=2)
        assert (first.total, first.exact, first.next_offset) == (4, False, 2)
        last = search.find(s, limit=2, offset=4)
        assert len(last.items) == 1 and last.next_offset is None
        exact = search.find(s, q="printer", limit=2)
        assert (exact.total, exact.exact) == (2, True)
