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
@pytest.mark.timeout(180)
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc")
def test_keep_alive_clients_spread_over_the_workers(service_env, tmp_path):
    """Connections opened one after another go to the worker holding fewer: plain gthread
    let the first worker to wake take them, often both clients on one worker."""
    import http.client

    port = free_port()
    env = server_env(
        {
            "TRIAGE_MODELS_DIR": str(service_env["models"]),
            "TRIAGE_KB_PATH": str(service_env["kb"]),
            "TRIAGE_API_KEYS": KEYS_SPEC,
            "TRIAGE_CACHE_DIR": str(tmp_path / "cache"),
            "TRIAGE_ACCEPT_DELAY_MS": "200",  # far beyond any wake-up on a busy machine
        }
    )
    command = triage_serve(port, "--workers", "2", "--bundle", str(service_env["bundle"]))
    base, log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with serving(command, env, log, base) as proc:
        workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(workers) == 2

        def clients(n: int) -> list[int]:
            """The worker serving each of ``n`` keep-alive clients opened one after another."""
            while _server_side_inodes(port):  # earlier connections, still being closed
                time.sleep(0.05)
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
            for conn in conns:
                conn.close()
            return holders

        deadline = time.time() + 90  # /readyz answered: the other worker may still be loading
        while len(set(clients(2))) < 2:
            assert time.time() < deadline, "one worker never took a connection"
        holders = clients(4)
        assert holders[0] != holders[1], holders  # the second client: the idle worker
        assert sorted(holders.count(w) for w in workers) == [2, 2], holders
