"""SQLite writers queue on the write gate and always let it go when their transaction ends."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from triage.store import Store
from triage.store.engine import write_gate


@pytest.fixture()
def sqlite_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gate.db'}")
    store.upgrade()
    yield store
    store.dispose()


def free(gate) -> bool:
    """Can another thread take the gate right now? (It is released again at once.)"""
    got = []
    probe = threading.Thread(target=lambda: got.append(gate._threads.acquire(timeout=0.05)))
    probe.start()
    probe.join()
    if got[0]:
        gate._threads.release()
    return got[0]


def test_a_write_transaction_holds_the_gate_until_commit(sqlite_store):
    gate = write_gate(sqlite_store.url.split("///", 1)[1])
    with sqlite_store.session() as s:
        s.execute(text("SELECT 1"))
        assert not free(gate)
    assert free(gate)


def test_a_failed_transaction_lets_the_gate_go(sqlite_store):
    gate = write_gate(sqlite_store.url.split("///", 1)[1])
    with pytest.raises(RuntimeError):
        with sqlite_store.session() as s:
            s.execute(text("SELECT 1"))
            raise RuntimeError("boom")
    assert free(gate)


def test_readers_do_not_take_the_gate(sqlite_store):
    gate = write_gate(sqlite_store.url.split("///", 1)[1])
    with sqlite_store.session(readonly=True) as s:
        s.execute(text("SELECT 1"))
        assert free(gate)


def test_writers_of_two_threads_take_turns(sqlite_store):
    order = []

    def second():
        with sqlite_store.session() as s:
            s.execute(text("SELECT 1"))
            order.append("second")

    with sqlite_store.session() as s:
        s.execute(text("SELECT 1"))
        other = threading.Thread(target=second)
        other.start()
        other.join(timeout=0.3)  # it waits on the gate while this transaction is open
        order.append("first")
    other.join(timeout=30)
    assert order == ["first", "second"]
