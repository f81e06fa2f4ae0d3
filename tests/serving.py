"""Helpers for tests that start a real server process on a loopback port, bounded in time."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
# gunicorn with the shipped configuration: the server as deployed, set through TRIAGE_* variables
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "service" / "gunicorn_conf.py")]


def free_port() -> int:
    """A free loopback port: from ``BENCH_PORTS`` (``lo-hi``) when set, so engineers sharing
    a machine stay in their own ranges (tried in a random order: two servers of one run
    must not race for the first); else one the kernel picks."""
    ports = os.environ.get("BENCH_PORTS", "")
    candidates = [0]
    if ports:
        low, high = (int(part) for part in ports.split("-"))
        candidates = random.sample(range(low, high + 1), high - low + 1)
    for candidate in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in BENCH_PORTS={ports}")


def triage_serve(port: int, *args: str) -> list[str]:
    """The command line of ``triage serve`` on a loopback port."""
    return [sys.executable, "-m", "triage_cli", "serve", "--port", str(port), *args]


def server_env(settings: dict[str, str], unset: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment plus ``settings``, the package importable from the checkout.

    The metrics folder is dropped (each server makes its own), and so is every name in ``unset``.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), **settings}
    for name in ("PROMETHEUS_MULTIPROC_DIR", *unset):
        env.pop(name, None)
    return env


def launch(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server from the checkout, its output (both streams) into ``log``."""
    with open(log, "wb") as out:  # the child holds its own copy of the descriptor
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def serving(
    command: list[str],
    env: dict[str, str],
    log: Path,
    base: str,
    seconds: float = 90,
    path: str = "/readyz",
) -> Iterator[subprocess.Popen]:
    """A server that answers ``path`` at ``base`` for the block's length, then is stopped."""
    proc = launch(command, env, log)
    try:
        wait_ready(base, proc, seconds, log, path)
        yield proc
    finally:
        stop(proc)


def wait_ready(
    base: str, proc: subprocess.Popen, seconds: float = 90, log: Path | None = None, path: str = "/readyz"
) -> None:
    """Poll ``path`` until 200; fail at once if the process died (with its log tail)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise AssertionError(f"the server exited early\n{tail}")
        try:
            if requests.get(f"{base}{path}", timeout=10).status_code == 200:
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
