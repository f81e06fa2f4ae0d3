"""kill -9 in the middle of an intake stream: no acknowledged ticket lost, no duplicate on retry.

A real service process (Flask's server, threaded) takes a stream of
``POST /v1/tickets`` with one ``Idempotency-Key`` each. Once some are
acknowledged the process is SIGKILLed; a new process starts on the same
database and the client retries *every* key, as a client that cannot tell
what happened must. Each acknowledged ticket must still be there with the
same id, and each key must have made exactly one ticket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from serving import free_port
from triage.store import tickets

ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import sys
from service.app import create_app
app = create_app({"TRIAGE_LOAD": "off", "TRIAGE_API_KEYS": "k:intake", "TRIAGE_SIGHUP": False,
                  "TRIAGE_DATABASE_URL": sys.argv[1]})
app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True, use_reloader=False)
"""
N = 40


def _url_of(store) -> str:
    url = store.url
    if store.schema:  # the server process must land in this session's schema
        url += ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={store.schema}")
    return url


def _start(url: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, url, str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=1)
            return proc
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None:
                raise RuntimeError("the service process exited at start-up")
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not answer within 60 s")


def _post(port: int, i: int) -> int | None:
    """Ticket id if acknowledged, None if the connection died first."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/tickets",
        method="POST",
        data=json.dumps({"subject": f"crash test {i}", "requester": "ann@x"}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer k",
            "Idempotency-Key": f"crash-{i}",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["ticket"]["id"]
    except (urllib.error.URLError, OSError, ValueError):
        return None


@pytest.mark.slow  # a real server process, killed and restarted
@pytest.mark.timeout(180)
def test_kill_9_loses_no_acknowledged_ticket_and_retries_make_no_duplicates(store):
    url, port = _url_of(store), free_port()
    proc = _start(url, port)
    acked: dict[int, int] = {}

    def stream():
        for i in range(N):
            tid = _post(port, i)
            if tid is None:
                return
            acked[i] = tid

    sender = threading.Thread(target=stream)
    sender.start()
    while len(acked) < N // 3 and sender.is_alive():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests may be in flight
    proc.wait(timeout=10)
    sender.join(timeout=30)
    assert 0 < len(acked) < N, "the kill should land mid-stream"

    proc = _start(url, port)
    try:
        retried = {i: _post(port, i) for i in range(N)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert all(v is not None for v in retried.values())
    assert {i: retried[i] for i in acked} == acked  # same ticket for every acknowledged key
    with store.session() as s:
        stored = tickets.query(s, limit=10 * N)
        assert len(stored) == N == len(set(retried.values()))
