"""Helpers for tests that start a real server process on a loopback port, bounded in time."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, seconds: float = 90, log: Path | None = None) -> None:
    """Poll ``/readyz`` until 200; fail at once if the process died (with its log tail)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise AssertionError(f"triage serve exited early\n{tail}")
        try:
            if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # workers still importing
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready within {seconds}s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (gunicorn's graceful stop), then kill if it lingers."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
