"""The retrain schedule and its lock: due by labels or by time, and never twice at once.

The lock is checked across processes (a second Python process cannot take it while this
one holds it) and, on PostgreSQL, across connections of different engines (as several
service workers on several hosts would hold them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from training.schedule import RetrainLock, Schedule, is_due, run_if_due, watch
from triage.store import Store
from triage.store.tables import Feedback, TicketRow

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

OTHER_PROCESS = """
import sys
from training.schedule import RetrainLock
lock = RetrainLock(sys.argv[1])
print("got" if lock.acquire() else "busy")
"""


def _other_process_tries(models) -> str:
    out = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(models)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_file_lock_holds_across_processes(tmp_path):
    lock = RetrainLock(tmp_path)
    assert lock.kind == "flock"
    assert lock.acquire()
    try:
        assert _other_process_tries(tmp_path) == "busy"
        assert not RetrainLock(tmp_path).acquire()  # another holder in this process too
    finally:
        lock.release()
    assert _other_process_tries(tmp_path) == "got"


def test_run_if_due_never_runs_twice_at_once(tmp_path):
    runs, started = [], threading.Barrier(4)

    def job():
        runs.append(1)
        time.sleep(0.5)
        return "trained"

    results = []

    def caller():
        started.wait()
        results.append(run_if_due(job, tmp_path, Schedule(), force=True))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(runs) == 1
    assert sorted(r["ran"] for r in results) == [False, False, False, True]
    assert all("busy" in r["why"] for r in results if not r["ran"])


def _store_with_feedback(tmp_path, n: int, at: datetime) -> Store:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    with store.session() as s:
        t = TicketRow(subject="vpn down", body="")
        s.add(t)
        s.flush()
        for i in range(n):
            s.add(
                Feedback(
                    ticket_id=t.id,
                    head="team",
                    predicted="Network",
                    corrected="Service Desk",
                    bundle_id="b",
                    by="agent",
                    at=at + timedelta(seconds=i),
                )
            )
    return store


def test_due_when_enough_labels_or_when_the_interval_passed(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    last = datetime(2026, 11, 1, tzinfo=timezone.utc)
    (models / "retrain-log.jsonl").write_text(json.dumps({"at": last.isoformat()}) + "\n")
    store = _store_with_feedback(tmp_path, 5, last + timedelta(hours=1))
    soon = last + timedelta(days=1)
    assert is_due(models, Schedule(min_new_labels=5, interval=None), store, soon)[0]
    due, why = is_due(models, Schedule(min_new_labels=6, interval=timedelta(days=7)), store, soon)
    assert not due and "not due" in why
    due, why = is_due(
        models, Schedule(min_new_labels=6, interval=timedelta(days=7)), store, last + timedelta(days=8)
    )
    assert due and "older than" in why
    assert is_due(tmp_path / "empty", Schedule(), None)[0]  # nothing trained yet
    store.dispose()


def test_watch_is_bounded_and_survives_a_failed_retrain(tmp_path):
    calls = []

    def job():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return "ok"

    out = watch(job, tmp_path, Schedule(interval=timedelta(0)), poll_seconds=0.01, max_runs=1)
    assert len(calls) == 2
    assert out[0]["why"].startswith("failed: RuntimeError") and out[-1]["ran"]
    (tmp_path / "retrain-log.jsonl").write_text(
        json.dumps({"at": datetime.now(timezone.utc).isoformat()}) + "\n"
    )
    t0 = time.monotonic()
    out = watch(
        lambda: None,
        tmp_path,
        Schedule(interval=timedelta(days=99), min_new_labels=None),
        poll_seconds=0.05,
        max_seconds=0.3,
    )
    assert time.monotonic() - t0 < 5 and not any(o["ran"] for o in out)


# ---------------------------------------------------------------------------- PostgreSQL
@pytest.fixture()
def pg_url():
    url = os.environ.get("TRIAGE_TEST_POSTGRES_URL") or PG_DEFAULT
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        reason = f"PostgreSQL does not answer at {url} ({type(exc).__name__})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason + "; set TRIAGE_TEST_POSTGRES_URL to run it")
    return url


@pytest.mark.postgres
def test_advisory_lock_holds_across_workers(pg_url, tmp_path):
    key = 700000 + os.getpid() % 10000  # unique per test run: parallel runs never collide
    a, b = Store(pg_url), Store(pg_url)  # two engines: two workers
    try:
        first, second = RetrainLock(tmp_path / "a", a, key=key), RetrainLock(tmp_path / "b", b, key=key)
        assert first.kind == "postgresql-advisory"
        assert first.acquire()
        assert not second.acquire()
        first.release()
        assert second.acquire()
        second.release()
    finally:
        a.dispose()
        b.dispose()


@pytest.mark.postgres
def test_advisory_lock_is_freed_when_its_holder_dies(pg_url, tmp_path):
    key = 710000 + os.getpid() % 10000
    code = (
        "import sys, os; from triage.store import Store; from training.schedule import "
        "RetrainLock; l = RetrainLock(sys.argv[1], Store(sys.argv[2]), key=int(sys.argv[3])); "
        "print(l.acquire(), flush=True); os._exit(0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), pg_url, str(key)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "True"
    store = Store(pg_url)
    try:
        lock = RetrainLock(tmp_path, store, key=key)
        deadline = time.monotonic() + 10
        while not lock.acquire():  # the server notices the closed connection
            assert time.monotonic() < deadline
            time.sleep(0.2)
        lock.release()
    finally:
        store.dispose()
