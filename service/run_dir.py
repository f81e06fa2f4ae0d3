"""The run folder a gunicorn master shares with its workers, and the ones left behind.

``on_exit`` removes the folder on a clean stop, but a hard kill (``kill -9``,
an OOM kill, a power cut) skips it and leaves ``triage-run-*`` in the temporary
directory forever. So the folder records its master's pid, and every start
sweeps the folders whose master is gone. Folders of servers still running (the
same machine may run several: tests, benchmarks, a developer's own) are left.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from triage.procs import pid_alive

PREFIX = "triage-run-"
PID_FILE = "master.pid"
GRACE_SECONDS = 60.0  # a folder without a pid file may be one being made right now

log = logging.getLogger("service.run_dir")


def make(base: str | None = None) -> Path:
    """A new run folder owned by this process (with a ``metrics`` subfolder)."""
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    (path / "metrics").mkdir()
    (path / PID_FILE).write_text(str(os.getpid()), encoding="ascii")
    return path


def abandoned(path: Path, now: float | None = None) -> bool:
    """True when the folder's master is dead (or it never said who it was, long ago)."""
    try:
        pid = int((path / PID_FILE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        try:
            age = (now or time.time()) - path.stat().st_mtime
        except OSError:
            return False
        return age > GRACE_SECONDS
    return pid != os.getpid() and not pid_alive(pid)


def sweep(base: str | None = None) -> list[Path]:
    """Remove the run folders of dead masters; returns what was removed."""
    root = Path(base or tempfile.gettempdir())
    removed = []
    for path in root.glob(PREFIX + "*"):
        if path.is_dir() and not path.is_symlink() and abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    if removed:
        log.info("removed %d run folder(s) left by killed servers", len(removed))
    return removed


def remove(path: str | os.PathLike) -> None:
    """The clean-stop path: remove our own folder (only ever a ``triage-run-*`` one)."""
    if os.path.basename(os.fspath(path)).startswith(PREFIX):
        shutil.rmtree(path, ignore_errors=True)
