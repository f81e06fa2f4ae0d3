"""What the benchmark scripts share: a loopback port, waiting for /readyz, stopping the server (bounded)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time


def free_port() -> int:
    """A free loopback port: from ``BENCH_PORTS`` (``lo-hi``) when set, so engineers
    sharing a machine stay in their own ranges; else one the kernel picks."""
    ports = os.environ.get("BENCH_PORTS", "")
    candidates = range(int(ports.split("-")[0]), int(ports.split("-")[1]) + 1) if ports else [0]
    for candidate in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise SystemExit(f"no free port in BENCH_PORTS={ports}")


def wait_ready(port: int, proc: subprocess.Popen, seconds: float = 180) -> None:
    """Poll ``/readyz`` on 127.0.0.1:port until 200; stop the script if the server died."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited before becoming ready (see its log)")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"not ready within {seconds:.0f}s")


def kill_after(proc: subprocess.Popen, seconds: float) -> threading.Timer:
    """A started timer that kills the server's process group if the script overruns."""
    killer = threading.Timer(seconds, lambda: os.killpg(proc.pid, signal.SIGKILL))
    killer.start()
    return killer


def stop_server(proc: subprocess.Popen, killer: threading.Timer | None = None) -> None:
    """Stop a server started in its own session: SIGTERM to its group, SIGKILL after 30 s."""
    if killer is not None:
        killer.cancel()
    if proc.poll() is not None:
        return  # it exited by itself (its log says why)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
