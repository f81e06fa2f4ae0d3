"""The burst window in memory gives the burst the database query gives (both stores).

Each process keeps the last 30 minutes' vectors beside its open-ticket index
(``triage.store.similar._Window``), fed by the index's load and catch-ups, so an
intake no longer reads the whole window. These tests compare its answer with the
query's (``_burst`` without a caught-up window reads ``_window``), on tickets stored
by this process, by another one, after a restart, and with members closed since.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from triage.encoder import HashingEncoder
from triage.store import Store, similar, tickets
from triage.store.intake import intake
from triage.store.tables import TicketRow
from triage.text import model_text

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
ENC = HashingEncoder()
NAME = similar.encoder_name(ENC)

# three topics piling up at once, and unrelated tickets between them
BURSTS = {
    "VPN down": "cannot connect to the VPN since this morning, user {i}",
    "Printer jams on floor 3": "paper stuck again in the big printer, user {i}",
    "Outlook calendar crashes": "the calendar closes when I open an invite, user {i}",
}
OTHERS = ["Payroll question", "Password expired", "Laptop battery", "Badge does not open door"]


@pytest.fixture(autouse=True)
def fresh_index(store):
    """As a fresh process: no index, no window, and no vectors cached by the window query
    (cached by id: another test's ticket 1 is not this one's)."""
    similar._INDEXES.pop(store.engine, None)
    similar._RECENT.pop(store.engine, None)
    yield
    settle(store)


def settle(store) -> None:
    for kept in list(similar._INDEXES.get(store.engine, {}).values()):
        assert kept.done.wait(60) and kept.index.wait(60)


def send(s, subject, body, requester, at):
    return intake(
        s, {"subject": subject, "body": body, "requester": requester}, actor=requester, encoder=ENC, now=at
    )


def fill(store, start=NOW, per_topic=4, step=timedelta(seconds=50)):
    """Tickets of the three topics interleaved with others, one every ``step``; their ids."""
    ids, at = [], start
    for i in range(per_topic):
        for topic, body in BURSTS.items():
            with store.session() as s:
                ids.append(send(s, topic, body.format(i=i), f"u{i}-{len(ids)}@x", at).ticket.id)
            at += step
        with store.session() as s:
            other = OTHERS[i % len(OTHERS)]
            ids.append(send(s, other, f"{other} details {i}", f"o{i}@x", at).ticket.id)
        at += step
    return ids, at


def probe(subject, body, at, requester="probe@x"):
    return similar.Probe(ENC.encode([model_text(subject, body)])[0], NAME, requester, subject, at)


def both_ways(store, p, monkeypatch):
    """(the burst from the search, caught up in memory; the burst the window query gives), and
    how many times the search read the window from the database."""
    reads = []
    query = similar._window

    def counted(*args):
        reads.append(1)
        return query(*args)

    monkeypatch.setattr(similar, "_window", counted)
    with store.session() as s:
        found = similar.search(s, p)
    searched = len(reads)
    with store.session() as s:
        vec = np.asarray(p.vector, dtype=np.float32).ravel()
        queried = similar._burst(s, p, vec)  # no catch-up on this thread: the query answers
    assert len(reads) == searched + 1
    return found.incident, queried, searched


def load_index(store, at):
    """The first search creates this process's index; wait for its background load."""
    with store.session() as s:
        similar.search(s, probe("warm up", "nothing", at))
    settle(store)


def test_the_window_in_memory_proposes_what_the_query_does(store, monkeypatch):
    load_index(store, NOW)
    ids, at = fill(store, per_topic=5)
    for topic, body in BURSTS.items():
        memory, queried, reads = both_ways(store, probe(topic, body.format(i=99), at), monkeypatch)
        assert reads == 0  # answered from memory: the window was not read
        assert memory is not None and memory == queried
        assert memory["size"] == 6 and similar.NEW in memory["members"]
        assert set(memory["members"]) - {similar.NEW} <= set(ids)
    memory, queried, _ = both_ways(store, probe("Monitor flickers", "a new topic", at), monkeypatch)
    assert memory is None and queried is None


def test_tickets_stored_by_another_process_join_the_window(store, monkeypatch):
    load_index(store, NOW)
    other = Store(store.url, schema=store.schema)  # another worker's view of the same database
    try:
        ids, at = fill(other, per_topic=4)
    finally:
        other.dispose()
    memory, queried, reads = both_ways(
        store, probe("VPN down", BURSTS["VPN down"].format(i=77), at), monkeypatch
    )
    assert reads == 0 and memory == queried and memory is not None
    assert set(memory["members"]) - {similar.NEW} <= set(ids)


def test_after_a_restart_the_loaded_window_proposes_what_the_query_does(store, monkeypatch):
    ids, at = fill(store, per_topic=4)
    similar.forget(store.engine)  # a new process: no index, no window
    with store.session() as s:  # its first search reads the window while the index loads
        first = similar.search(s, probe("VPN down", BURSTS["VPN down"].format(i=78), at))
    settle(store)
    memory, queried, reads = both_ways(
        store, probe("VPN down", BURSTS["VPN down"].format(i=78), at), monkeypatch
    )
    assert reads == 0 and memory == queried == first.incident and memory is not None


def test_a_member_closed_since_it_was_read_leaves_the_burst(store, monkeypatch):
    load_index(store, NOW)
    ids, at = fill(store, per_topic=5)
    p = probe("Printer jams on floor 3", BURSTS["Printer jams on floor 3"].format(i=42), at)
    before, _, _ = both_ways(store, p, monkeypatch)
    closed = next(m for m in before["members"] if m != similar.NEW)
    with store.session() as s:
        ticket = s.get(TicketRow, closed)
        fields = {"category": "Hardware", "priority": "3", "affected_service": "Printing"}
        tickets.set_fields(s, ticket, fields, actor="agent@x", now=at)
        tickets.transition(s, ticket, "resolved", actor="agent@x", now=at)
    memory, queried, reads = both_ways(store, p, monkeypatch)
    assert reads == 0 and memory == queried
    assert closed not in memory["members"] and memory["size"] == before["size"] - 1


def test_a_window_older_than_what_memory_holds_is_read(store, monkeypatch):
    """A probe dated before the first search's window (a backfill) is answered by the query."""
    load_index(store, NOW + timedelta(hours=2))
    fill(store, per_topic=5)
    memory, queried, reads = both_ways(
        store, probe("VPN down", BURSTS["VPN down"].format(i=79), NOW), monkeypatch
    )
    assert reads == 1 and memory == queried and memory is not None


def test_the_window_keeps_the_newest_rows_and_says_when_it_cannot_answer():
    window = similar._Window(4, similar._micros(NOW))
    vec = np.array([1, 0, 0, 0], dtype=np.float32)
    n = similar.WINDOW_KEEP + 10
    times = [NOW + timedelta(seconds=i) for i in range(n)]
    window.add(list(range(1, n + 1)), times, np.tile(vec, (n, 1)))
    assert window.size < n and window.floor > similar._micros(NOW)  # trimmed: the oldest went
    # reaching before what is held, but with BURST_ROWS held from the floor on: the query's
    # newest BURST_ROWS are all held (its neighbours: the first BURST_NEIGHBOURS of equals)
    first = n - similar.BURST_ROWS + 1
    assert [key for key, _, _ in window.near(NOW, vec)] == list(
        range(first, first + similar.BURST_NEIGHBOURS)
    )
    few = similar._Window(4, similar._micros(NOW))
    few.add([1, 2, 3], times[:3], np.tile(vec, (3, 1)))
    assert few.near(NOW - timedelta(seconds=1), vec) is None  # before the floor: the caller reads
    newest = window.near(times[-1] - timedelta(seconds=5), vec)
    assert [key for key, _, _ in newest] == list(range(n - 5, n + 1))
    window.add([n], [times[-1]], [vec])  # held already: not added twice
    assert sum(1 for key in window.keys[: window.size] if key == n) == 1
    window.forget([n])
    assert n not in window.held and n not in window.keys[: window.size].tolist()


def test_a_catch_up_that_finds_new_tickets_does_not_ask_for_the_highest_id(store, monkeypatch):
    """The ids read above the watermark give the highest id: one query less per busy intake."""
    load_index(store, NOW)
    fill(store, per_topic=1)
    tops = []
    top = similar._top
    monkeypatch.setattr(similar, "_top", lambda *args: tops.append(1) or top(*args))
    with store.session() as s:  # new tickets since the last look: no max() query
        similar.search(s, probe("VPN down", BURSTS["VPN down"].format(i=5), NOW))
    assert tops == []
    with store.session() as s:  # nothing new: the max() query tells rows were not deleted
        similar.search(s, probe("VPN down", BURSTS["VPN down"].format(i=6), NOW))
    assert tops == [1]
    assert len(similar._INDEXES[store.engine][(NAME, ENC.dim)].index) == 4  # all four caught up


def test_candidates_that_cannot_be_offered_are_not_read(store, monkeypatch):
    """A duplicate needs cosine + requester boost >= threshold: nearer-than-that candidates only
    are read back from the database, and the offer is the one a full read gives."""
    load_index(store, NOW)
    fill(store, per_topic=3)
    p = probe("VPN down", BURSTS["VPN down"].format(i=50), NOW + timedelta(minutes=30), "u1-4@x")
    read: list[list[int]] = []
    nearest = similar._nearest

    def recorded(*args, **kwargs):
        rows = nearest(*args, **kwargs)
        read.append([row[0] for row in rows])
        return rows

    monkeypatch.setattr(similar, "_nearest", recorded)
    with store.session() as s:
        floored = similar.search(s, p)
    monkeypatch.setattr(similar, "FLOOR_MARGIN", 10.0)  # a floor below any cosine: all read
    with store.session() as s:
        full = similar.search(s, p)
    assert floored.duplicates == full.duplicates and len(floored.duplicates) == 3
    assert set(read[0]) == {d["ticket_id"] for d in floored.duplicates}  # the other topics: not read
    assert len(read[1]) == 12  # all open tickets are among the 64 nearest


def test_the_window_answers_as_the_newest_rows_sorted_whatever_the_order_they_come_in():
    """Tickets arrive out of (time, id) order (ids are given at commit, times at request):
    the window's answer is the query's, the newest BURST_ROWS by (time, id), through trims."""
    rng = np.random.default_rng(7)
    window = similar._Window(8, similar._micros(NOW))
    held: dict[int, tuple] = {}
    topics = rng.normal(size=(5, 8)).astype(np.float32)
    for batch in range(60):
        keys = list(range(batch * 200 + 1, batch * 200 + 201))
        rng.shuffle(keys)
        stamps = [NOW + timedelta(milliseconds=int(k) * 10 + int(rng.integers(-900, 900))) for k in keys]
        vecs = topics[rng.integers(0, 5, size=len(keys))] + rng.normal(scale=0.3, size=(len(keys), 8))
        vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
        window.add(keys, stamps, vecs)
        held.update({k: (s, v) for k, s, v in zip(keys, stamps, vecs)})
        probe = vecs[0]
        since = max(stamps[0] - timedelta(seconds=30), NOW)  # the first floor: NOW
        got = window.near(since, probe)
        assert got is not None
        kept = set(window.keys[: window.size].tolist())
        rows = sorted(
            (k for k in kept if held[k][0] >= since), key=lambda k: (similar._micros(held[k][0]), k)
        )[-similar.BURST_ROWS :]
        expected = [rows[i] for i in similar._near(np.vstack([held[k][1] for k in rows]), probe)]
        assert [key for key, _, _ in got] == expected
        assert window.size <= similar.WINDOW_KEEP
