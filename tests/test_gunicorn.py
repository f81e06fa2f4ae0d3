"""`triage serve` under gunicorn on a loopback port, called over HTTP, then stopped."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from service_fixtures import KEYS_SPEC, TICKET
from serving import free_port, server_env, serving, triage_serve, wait_ready


@pytest.fixture()
def server(service_env, tmp_path):
    port = free_port()
    env = server_env(
        {
            "TRIAGE_MODELS_DIR": str(service_env["models"]),
            "TRIAGE_KB_PATH": str(service_env["kb"]),
            "TRIAGE_API_KEYS": KEYS_SPEC,
            "TRIAGE_KB_THRESHOLD": "0.2",
            "TRIAGE_CACHE_DIR": str(tmp_path / "cache"),
        }
    )
    command = triage_serve(port, "--workers", "2", "--bundle", str(service_env["bundle"]))
    base, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with serving(command, env, log, base) as proc:
        yield base, proc, log


@pytest.mark.slow  # a real gunicorn with two workers
@pytest.mark.timeout(180)
def test_serve_under_gunicorn(server):
    base, proc, log_path = server
    s = requests.Session()
    s.headers["Authorization"] = "Bearer intake-key"
    r = s.post(f"{base}/v1/classify", json=TICKET, headers={"X-Request-Id": "gunicorn-1"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-Id"] == "gunicorn-1"
    assert r.json()["result"]["sla"]["policy"]
    bad = s.post(f"{base}/v1/classify", data=b"\xff", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["ok"] is False
    for _ in range(4):
        assert s.get(f"{base}/v1/kb/suggest", params={"q": "vpn drops"}, timeout=10).ok
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert 'triage_http_request_duration_seconds_count{endpoint="/v1/kb/suggest",method="GET"}' in metrics
    assert "triage_bundle_info{" in metrics
    admin = {"Authorization": "Bearer admin-key"}
    r = requests.post(f"{base}/v1/admin/reload", json={"wait": True}, headers=admin, timeout=60)
    assert r.status_code == 200, r.text
    deadline = time.time() + 20  # the sibling polls every 0.5 s; slower on a busy machine
    while "reload requested by a sibling worker" not in log_path.read_text(errors="replace"):
        assert time.time() < deadline, "the sibling worker did not follow the reload"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGHUP)  # the master replaces its workers gracefully
    time.sleep(1)
    wait_ready(base, proc, 60)
    assert s.post(f"{base}/v1/classify", json=TICKET, timeout=10).status_code == 200


def test_serve_makes_workers_load_before_accepting_unless_told_otherwise(monkeypatch):
    import argparse

    from triage_cli.serve import _environment

    args = argparse.Namespace(host="127.0.0.1", port=8123, workers=None, bundle=None, encoder=None)
    monkeypatch.delenv("TRIAGE_LOAD", raising=False)
    assert _environment(args)["TRIAGE_LOAD"] == "sync"
    monkeypatch.setenv("TRIAGE_LOAD", "background")
    assert _environment(args)["TRIAGE_LOAD"] == "background"


def _server_side_inodes(server_port: int) -> dict[int, int]:
    """Client port → inode of the server's end, for established loopback TCP connections."""
    out = {}
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.split(":")[1], 16) == server_port:
            out[int(remote.split(":")[1], 16)] = inode
    return out


def _worker_holding(workers: list[int], inode: int) -> int | None:
    for pid in workers:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


@pytest.mark.slow  # a real gunicorn with two workers
@pytest.mark.timeout(900)
def test_keep_alive_clients_spread_over_the_workers(service_env, tmp_path):
    """Connections opened one after another go to the worker holding fewer (plain gthread let
    the first worker to wake take them, often both clients on one worker), also when the
    clients reconnect the moment they closed their old connections; and a worker holding no
    more than the other takes a connection at once: the step-aside delay here is two minutes,
    past the clients' 30 s timeout, so any connection left waiting for it fails the test."""
    import http.client

    port = free_port()
    env = server_env(
        {
            "TRIAGE_MODELS_DIR": str(service_env["models"]),
            "TRIAGE_KB_PATH": str(service_env["kb"]),
            "TRIAGE_API_KEYS": KEYS_SPEC,
            "TRIAGE_CACHE_DIR": str(tmp_path / "cache"),
            # far beyond any wake-up on a busy machine, and beyond the clients' timeout
            "TRIAGE_ACCEPT_DELAY_MS": "120000",
        }
    )
    command = triage_serve(port, "--workers", "2", "--bundle", str(service_env["bundle"]))
    base, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with serving(command, env, log, base) as proc:
        workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(workers) == 2

        def opened(n: int) -> tuple[list, list[int]]:
            """``n`` keep-alive clients opened one after another, and the worker serving each."""
            conns, holders = [], []
            for _ in range(n):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/livez")
                response = conn.getresponse()
                assert response.status == 200 and response.read()
                assert response.getheader("Connection", "").lower() != "close"
                conns.append(conn)
                inode = _server_side_inodes(port)[conn.sock.getsockname()[1]]
                holders.append(_worker_holding(workers, inode))
            return conns, holders

        def clients(n: int) -> list[int]:
            while _server_side_inodes(port):  # earlier connections, still being closed
                time.sleep(0.05)
            conns, holders = opened(n)
            for conn in conns:
                conn.close()
            return holders

        deadline = time.time() + 90  # /readyz answered: the other worker may still be loading
        while len(set(clients(2))) < 2:
            assert time.time() < deadline, "one worker never took a connection"
        holders = clients(4)
        assert holders[0] != holders[1], holders  # the second client: the idle worker
        assert sorted(holders.count(w) for w in workers) == [2, 2], holders

        conns, _ = opened(2)
        for _ in range(3):  # a client dropping its connections and opening new ones at once
            for conn in conns:
                conn.close()
            conns, holders = opened(2)
            assert holders[0] != holders[1], holders
        for conn in conns:
            conn.close()

        for _ in range(6):  # clients closing after every request: served without waiting
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/livez", headers={"Connection": "close"})
            assert conn.getresponse().status == 200
            conn.close()


def test_a_worker_keeps_what_it_loaded_out_of_full_collections(app):
    """gunicorn's post_worker_init freezes the loaded app: a generation-2 collection then
    no longer walks the bundle and index (a ~160 ms stall of the worker's requests)."""
    import gc
    from types import SimpleNamespace

    environ = dict(os.environ)  # the config module sets thread counts for the workers
    app.config["TRIAGE_SIGHUP"] = False  # no SIGHUP handler in the test process
    try:
        before = gc.get_freeze_count()
        _gunicorn_conf().post_worker_init(SimpleNamespace(wsgi=app))
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
        os.environ.clear()
        os.environ.update(environ)


def _gunicorn_conf():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "service" / "gunicorn_conf.py"
    spec = importlib.util.spec_from_file_location("triage_gunicorn_conf_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_worker_table_is_shared_across_forks_and_forgets_dead_workers():
    """What one worker writes, a sibling forked from the same master reads; a dead worker's
    slot neither counts nor stays taken."""
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
    try:
        from gunicorn_worker import WorkerTable
    finally:
        sys.path.pop(0)
    table = WorkerTable(slots=4)
    mine = table.claim(1)
    table.write(mine, os.getpid(), 3, 7)
    child = os.fork()
    if child == 0:  # a sibling: takes a slot of its own, holds 1 connection, looked twice
        theirs = table.claim(1)
        table.write(theirs, os.getpid(), 1, 2)
        os._exit(0 if table.others(theirs) == {mine: (3, 7)} else 1)
    pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert table.others(mine) == {}  # the sibling wrote (1, 2), then died: not counted
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    table.write(2, int(dead.stdout), 0, 0)
    assert table.others(mine) == {}
    assert table.claim(2) == 2  # a dead worker's slot is taken again


def test_the_master_loads_its_worker_class_without_the_service_package():
    """gunicorn_conf.py in a fresh interpreter, as the master loads it: neither the ``service``
    package (the app) nor prometheus_client may be imported before ``on_starting`` sets the
    metrics folder, or the workers' metrics stay their own (no /metrics lines). The worker
    table's pid check comes from outside ``service`` for that reason (triage/procs.py)."""
    import subprocess
    import sys

    conf = Path(__file__).resolve().parents[1] / "service" / "gunicorn_conf.py"
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('conf', {str(conf)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert module.worker_class.__name__ == 'BalancedThreadWorker', module.worker_class\n"
        "print(sorted(m for m in sys.modules if m == 'service' or m.startswith(('service.', 'prometheus_client'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRIAGE_WORKER_CLASS"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
