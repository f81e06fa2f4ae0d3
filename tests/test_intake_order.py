"""Intake's order of work: model and duplicate search before the write lock, text encoded once.

What makes intake fast under concurrency is structural (bench/bench_store.py
measures the speed; nothing here times anything): the SQLite write transaction
(``BEGIN IMMEDIATE``) must open only after the duplicate search has read, and
the encoder must run once per ticket, its vector shared by heads and search.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import event, select

from test_store_feedback import pred
from triage.encoder import HashingEncoder
from triage.rules import RuleSet
from triage.store import tickets
from triage.store.intake import intake
from triage.store.tables import TicketVector

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
RULES = RuleSet.load()


class CountingEncoder(HashingEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def encode(self, texts, **kwargs):
        self.texts.extend(texts)
        return super().encode(texts, **kwargs)


class VectorTriager:
    """Reads vectors of the hashing space, like a Triager whose heads use embeddings."""

    bundle_id = "b-vectors"

    def __init__(self, encoder) -> None:
        self.encoder, self.given = encoder, []

    def encoder_reference(self) -> dict:
        return self.encoder.reference()

    def classify(self, items, policy=None, *, vectors=None):
        if vectors is None:
            vectors = self.encoder.encode([f"{t.subject}\n{t.body}" for t in items])
        self.given.append(np.asarray(vectors))
        return [
            {"fields": {"category": pred("Network", 0.99, "apply")}, "bundle_id": self.bundle_id}
            for _ in items
        ]


def test_the_text_is_encoded_once_for_the_heads_and_the_duplicate_search(store):
    enc = CountingEncoder()
    triager = VectorTriager(enc)
    with store.session() as s:
        res = intake(
            s,
            {"subject": "VPN down", "body": "since 9", "requester": "ann@x"},
            actor="ann@x",
            triager=triager,
            ruleset=RULES,
            encoder=enc,
            now=NOW,
        )
        kept = s.scalars(select(TicketVector).where(TicketVector.ticket_id == res.ticket.id)).one()
    assert len(enc.texts) == 1
    assert res.ticket.category == "Network"
    np.testing.assert_array_equal(triager.given[0][0], np.frombuffer(kept.vector, np.float32))


def test_a_triager_of_another_vector_space_encodes_for_itself(store):
    triager = VectorTriager(HashingEncoder(dim=64))
    enc = CountingEncoder()
    with store.session() as s:
        intake(s, {"subject": "VPN down"}, actor="x", triager=triager, encoder=enc, now=NOW)
    assert len(enc.texts) == 1 and triager.given[0].shape == (1, 64)


def test_sqlite_reads_for_duplicates_before_it_takes_the_write_lock(store):
    if store.dialect != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's write lock")
    seen: list[str] = []

    def log(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    with store.session() as s:
        intake(s, {"subject": "VPN down", "requester": "a@x"}, actor="a@x", encoder=HashingEncoder(), now=NOW)
    event.listen(store.engine, "before_cursor_execute", log)
    try:
        with store.session() as s:
            res = intake(
                s,
                {"subject": "VPN down", "requester": "a@x"},
                actor="a@x",
                encoder=HashingEncoder(),
                ruleset=RULES,
                now=NOW + timedelta(minutes=1),
            )
    finally:
        event.remove(store.engine, "before_cursor_execute", log)
    assert res.duplicates  # the search ran and found the first ticket
    search = next(i for i, sql in enumerate(seen) if "FROM ticket_vectors" in sql)
    write = seen.index("BEGIN IMMEDIATE")
    assert seen[:search].count("BEGIN") == 1 and "BEGIN IMMEDIATE" not in seen[:search]
    assert search < write and seen[write + 1].startswith("INSERT INTO tickets")
    assert all(not sql.startswith(("INSERT", "UPDATE")) for sql in seen[:write])


def test_in_a_callers_transaction_the_search_sees_its_uncommitted_tickets(store):
    enc = HashingEncoder()
    with store.session() as s:
        first = intake(
            s, {"subject": "Printer jams", "requester": "b@x"}, actor="b@x", encoder=enc, now=NOW
        ).ticket
        again = intake(
            s,
            {"subject": "Printer jams", "requester": "b@x"},
            actor="b@x",
            encoder=enc,
            now=NOW + timedelta(minutes=5),
        )
    assert [d["ticket_id"] for d in again.duplicates] == [first.id]


@pytest.mark.timeout(180)
def test_concurrent_intakes_with_duplicate_search_all_land(store):
    enc, errors, ids = HashingEncoder(), [], []
    lock = threading.Lock()

    def client(c: int) -> None:
        try:
            for i in range(8):
                with store.session() as s:
                    res = intake(
                        s,
                        {"subject": f"Outlook crashes {i % 2}", "requester": f"u{c}@x"},
                        actor=f"u{c}@x",
                        encoder=enc,
                        ruleset=RULES,
                        idempotency_key=f"k-{c}-{i}",
                        now=NOW + timedelta(seconds=i),
                    )
                with lock:
                    ids.append(res.ticket.id)
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    assert not errors, errors
    assert len(set(ids)) == 32
    with store.session() as s:
        assert len(tickets.query(s, limit=100)) == 32
        assert len(s.scalars(select(TicketVector)).all()) == 32
