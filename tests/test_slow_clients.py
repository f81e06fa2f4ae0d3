"""Slow-body clients against gunicorn, directly and behind the shipped nginx configuration.

Eight clients each send a request head and then one body byte every two seconds
(bounded: about 14 s in all); meanwhile ``/livez`` is probed once a second with a
two-second timeout. Directly, the default server (2 workers x 2 threads) has a
thread per slow client to give; behind ``deploy/nginx.conf`` the proxy holds the
slow bodies and gunicorn only ever sees complete requests. Debian's nginx is
installed by ``.ci/run``; without it the test is skipped (failed under CI=true).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from serving import GUNICORN, free_port, server_env, serving

ROOT = Path(__file__).resolve().parents[1]
SLOW_CLIENTS = 8
DRIP_SECONDS = 14.0
PROBE_TIMEOUT = 2.0


def _nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("nginx is not installed; .ci/run installs it (apt-get install nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return path


def _wait_http(url: str, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def gunicorn(tmp_path):
    port = free_port()
    settings = {
        "TRIAGE_BIND": f"127.0.0.1:{port}",
        "TRIAGE_LOAD": "off",
        "TRIAGE_WORKERS": "2",
        "TRIAGE_THREADS": "2",
        "TRIAGE_API_KEYS": "ik:intake",
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
        "TMPDIR": str(tmp_path),
        "TRIAGE_BODY_TIMEOUT": "60",
    }
    base = f"http://127.0.0.1:{port}"  # no bundle (TRIAGE_LOAD off): alive is ready enough here
    with serving(GUNICORN, server_env(settings), tmp_path / "gunicorn.log", base, path="/livez"):
        yield port


def nginx_config(tmp_path: Path, listen: int, upstream: int) -> Path:
    """The shipped server block, pointed at our ports, inside a minimal main config."""
    shipped = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "listen 80;" in shipped and "server 127.0.0.1:8000;" in shipped
    site = shipped.replace("listen 80;", f"listen 127.0.0.1:{listen};").replace(
        "server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"
    )
    (tmp_path / "triage.conf").write_text(site, encoding="utf-8")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / sub).mkdir(exist_ok=True)
    main = f"""
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
{"user root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/triage.conf;
}}
"""
    path = tmp_path / "nginx-main.conf"
    path.write_text(main, encoding="utf-8")
    return path


@pytest.fixture
def nginx(tmp_path, gunicorn):
    binary = _nginx()
    port = free_port()
    conf = nginx_config(tmp_path, port, gunicorn)
    check = subprocess.run(
        [binary, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/livez", 30)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _drip(port: int, stop_at: float) -> None:
    """One slow client: a valid head, then one body byte every 2 s until ``stop_at``."""
    body_length = 100
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return
    try:
        sock.sendall(
            b"POST /v1/tickets HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer ik\r\n"
            b"Content-Length: %d\r\n\r\n" % body_length
        )
        sent = 0
        while time.time() < stop_at and sent < body_length - 1:
            sock.sendall(b" ")
            sent += 1
            time.sleep(2.0)
    except OSError:
        pass  # the server may give up on us: that is allowed
    finally:
        sock.close()


def probe_under_slow_clients(port: int) -> tuple[int, int]:
    """(answered, probes): /livez probed once a second while the slow clients drip."""
    stop_at = time.time() + DRIP_SECONDS
    clients = [threading.Thread(target=_drip, args=(port, stop_at), daemon=True) for _ in range(SLOW_CLIENTS)]
    for c in clients:
        c.start()
    time.sleep(2.0)  # every slow client has sent its head
    answered = probes = 0
    while time.time() < stop_at - 1:
        probes += 1
        try:
            if (
                requests.get(
                    f"http://127.0.0.1:{port}/livez", timeout=PROBE_TIMEOUT, headers={"Connection": "close"}
                ).status_code
                == 200
            ):
                answered += 1
        except requests.RequestException:
            pass
        time.sleep(1.0)
    for c in clients:
        c.join(DRIP_SECONDS + 5)
    return answered, probes


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_slow_body_clients_do_not_starve_livez_behind_nginx(gunicorn, nginx):
    direct = probe_under_slow_clients(gunicorn)  # the reference, same run, same server
    proxied = probe_under_slow_clients(nginx)
    print(
        f"\n/livez answered under {SLOW_CLIENTS} slow-body clients: direct to gunicorn "
        f"{direct[0]}/{direct[1]}, behind deploy/nginx.conf {proxied[0]}/{proxied[1]}"
    )
    assert proxied[1] >= 8
    assert proxied[0] == proxied[1], proxied
