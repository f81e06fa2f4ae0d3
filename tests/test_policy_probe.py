"""The policy version check every classification makes: ``policies.VersionProbe`` (one
autocommit ``max(id)`` on a connection of the thread's own) must see an admin's change
committed by any engine or process before the next classification, on both stores."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from service_fixtures import TICKET, app_config, auth
from triage.store import Store, policies

ROOT = Path(__file__).resolve().parents[1]


def _other_engine(store: Store) -> Store:
    return Store(store.url, schema=store.schema)


def _set_mode_elsewhere(store: Store, head: str, mode: str) -> None:
    """An admin's change from another process (another worker, the CLI, another host)."""
    code = (
        "import sys; from triage.store import Store, policies\n"
        "s = Store(sys.argv[1], schema=sys.argv[2] or None)\n"
        "with s.session() as x:\n"
        "    policies.set_mode(x, sys.argv[3], sys.argv[4], by='admin-elsewhere')\n"
        "s.dispose()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, store.url, store.schema or "", head, mode],
        cwd=ROOT,
        check=True,
        timeout=120,
    )


def test_probe_sees_changes_of_another_engine_and_process(store):
    probe = policies.probe(store.engine)
    assert probe.version() == 0
    other = _other_engine(store)
    try:
        with other.session() as s:
            first = policies.set_mode(s, "type", "off", by="ann").id
        assert probe.version() == first  # no transaction of ours hides the commit
    finally:
        other.dispose()
    _set_mode_elsewhere(store, "team", "suggest_only")
    with store.session(readonly=True) as s:
        newest = policies.version(s)
    assert newest > first and probe.version() == newest


def test_probe_connections_close_with_the_engine(store):
    engine = Store(store.url, schema=store.schema)
    try:
        probe = policies.probe(engine.engine)
        assert probe.version() == 0 and len(probe._opened) == 1
        assert probe.version() == 0 and len(probe._opened) == 1  # one per thread, kept
    finally:
        engine.dispose()
    assert probe._opened == []  # nothing left open after dispose
    engine2 = Store(store.url, schema=store.schema)
    try:
        with engine2.session() as s:
            newest = policies.set_mode(s, "type", "off", by="ann").id
        assert probe.version() == newest  # reopened on the next call
    finally:
        engine.dispose()
        engine2.dispose()


def test_probe_keeps_no_connection_of_an_ended_thread(store):
    """Threads that come and go leave at most one connection per live thread behind."""
    engine = Store(store.url, schema=store.schema)
    try:
        probe = policies.probe(engine.engine)
        for _ in range(5):  # five short-lived threads, each asking once
            worker = threading.Thread(target=probe.version)
            worker.start()
            worker.join()
        assert len(probe._opened) == 1  # the last thread's; the ended ones were closed
        assert probe.version() == 0
        assert [thread for thread, _conn in probe._opened] == [threading.current_thread()]
    finally:
        engine.dispose()


@pytest.fixture()
def app_on_store(service_env, store):
    """The service on the test's database (both stores), classifying under its policy."""
    from service import create_app
    from service.store import EXTENSION, close

    app = create_app(app_config(service_env))
    app.extensions[EXTENSION] = store
    yield app
    app.extensions.pop(EXTENSION, None)  # the session's store outlives the app
    close(app)


def test_a_change_from_another_process_applies_to_the_next_classification(app_on_store, store):
    client = app_on_store.test_client()

    def decision() -> str:
        r = client.post("/v1/classify?kb=0", json=TICKET, headers=auth())
        assert r.status_code == 200, r.get_json()
        return r.get_json()["result"]["fields"]["type"]["decision"]

    before = decision()
    assert before != "abstain"
    assert policies.probe(store.engine)._opened  # the version came from the probe
    _set_mode_elsewhere(store, "type", "off")
    assert decision() == "abstain"
    _set_mode_elsewhere(store, "type", "auto")
    assert decision() == before
