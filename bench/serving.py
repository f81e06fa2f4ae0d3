"""What the benchmark scripts share: a free loopback port and waiting for /readyz (bounded)."""

from __future__ import annotations

import http.client
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
