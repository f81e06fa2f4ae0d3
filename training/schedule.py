"""When a retrain runs, and the lock that keeps it from ever running twice at once.

A retrain is due when enough new labels arrived since the last one (``min_new_labels``
feedback rows: corrections and confirmations) or when the schedule's interval has passed,
whichever comes first. Whoever asks (a cron job, ``triage retrain --watch`` in every
service host, an admin by hand) goes through :func:`run_if_due`, which takes the lock
first, so two of them never train at once, however many hosts and workers there are.

The lock:

* PostgreSQL store: a session-level advisory lock, ``pg_try_advisory_lock(key)``, held by a
  dedicated connection for the whole retrain. It spans every host that shares the
  database, and the server releases it if the holder dies (its connection closes).
* otherwise (SQLite store, or none): an exclusive ``flock`` on ``<models>/retrain.lock``.
  It spans every process on the host (the SQLite file is local anyway), and the kernel
  releases it when the holder dies, so a crash never leaves a stale lock behind.

Both are *try* locks: a second caller is told "busy" at once instead of queueing a
duplicate retrain behind the first.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

LOCK_KEY = 724006  # distinct from the store's migration lock (724001)
LOCK_FILE = "retrain.lock"


# ---------------------------------------------------------------------------- the lock
class RetrainLock:
    """``acquire()`` → bool without waiting; ``release()``; or ``with lock.held() as ok``."""

    def __init__(self, models: str | Path, store=None, key: int = LOCK_KEY) -> None:
        self.models = Path(models)
        self.store = store
        self.key = key
        self._conn = None
        self._fh = None

    @property
    def kind(self) -> str:
        return "postgresql-advisory" if self._postgres else "flock"

    @property
    def _postgres(self) -> bool:
        return self.store is not None and getattr(self.store, "dialect", "") == "postgresql"

    def acquire(self) -> bool:
        if self._conn is not None or self._fh is not None:
            raise RuntimeError("RetrainLock is not re-entrant: release it first")
        return self._acquire_pg() if self._postgres else self._acquire_file()

    def _acquire_pg(self) -> bool:
        from sqlalchemy import text

        conn = self.store.engine.connect()
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            conn.commit()  # the session lock outlives the transaction; do not idle in one
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _acquire_file(self) -> bool:
        import fcntl

        self.models.mkdir(parents=True, exist_ok=True)
        fh = open(self.models / LOCK_FILE, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "since": _now().isoformat()}))
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._conn is not None:
            from sqlalchemy import text

            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
        if self._fh is not None:
            import fcntl

            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    @contextmanager
    def held(self) -> Iterator[bool]:
        ok = self.acquire()
        try:
            yield ok
        finally:
            if ok:
                self.release()


# ---------------------------------------------------------------------------- when
@dataclass(frozen=True)
class Schedule:
    """Retrain every ``interval`` or as soon as ``min_new_labels`` labels arrived."""

    interval: timedelta | None = timedelta(days=7)
    min_new_labels: int | None = 200


def _now() -> datetime:
    return datetime.now(timezone.utc)


def last_retrain(models: Path) -> datetime | None:
    """The last retrain in ``retrain-log.jsonl``, else the champion bundle's creation time."""
    logfile = Path(models) / "retrain-log.jsonl"
    if logfile.exists():
        lines = [ln for ln in logfile.read_text("utf-8").splitlines() if ln.strip()]
        if lines:
            return datetime.fromisoformat(json.loads(lines[-1])["at"])
    from triage.champion import champion_bundle

    champ = champion_bundle(Path(models))
    if champ is None:
        return None
    try:
        return datetime.strptime(champ.name.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.fromtimestamp(champ.stat().st_mtime, timezone.utc)


def is_due(
    models: str | Path, schedule: Schedule, store=None, now: datetime | None = None
) -> tuple[bool, str]:
    """(due, why): enough new labels since the last retrain, or the interval has passed."""
    now = now or _now()
    last = last_retrain(Path(models))
    if last is None:
        return True, "no retrain and no champion yet"
    if store is not None and schedule.min_new_labels:
        from .retrain_data import new_labels_since

        with store.session() as session:
            n = new_labels_since(session, last)
        if n >= schedule.min_new_labels:
            return True, f"{n} new labels since {last.isoformat()} (>= {schedule.min_new_labels})"
    if schedule.interval is not None and now - last >= schedule.interval:
        return True, f"last retrain {last.isoformat()} is older than {schedule.interval}"
    return False, f"not due: last retrain {last.isoformat()}"


def run_if_due(
    job: Callable[[], Any], models: str | Path, schedule: Schedule, store=None, *, force: bool = False
) -> dict:
    """Take the lock, check, run ``job`` once. Never runs two jobs at once anywhere."""
    lock = RetrainLock(models, store)
    with lock.held() as ok:
        if not ok:
            return {"ran": False, "why": f"busy: another retrain holds the {lock.kind} lock"}
        due, why = (True, "forced") if force else is_due(models, schedule, store)
        if not due:
            return {"ran": False, "why": why}
        log.info("retrain starting: %s", why)
        return {"ran": True, "why": why, "result": job()}


def watch(
    job: Callable[[], Any],
    models: str | Path,
    schedule: Schedule,
    store=None,
    *,
    poll_seconds: float = 60.0,
    max_runs: int | None = None,
    max_seconds: float | None = None,
    stop: threading.Event | None = None,
) -> list[dict]:
    """Check every ``poll_seconds`` until ``max_runs`` retrains ran, ``max_seconds`` passed
    or ``stop`` is set; a failed retrain is logged and the loop goes on."""
    stop = stop or threading.Event()
    started, outcomes, runs = time.monotonic(), [], 0
    while not stop.is_set():
        try:
            out = run_if_due(job, models, schedule, store)
        except Exception as exc:  # noqa: BLE001 - one bad retrain must not stop the schedule
            log.exception("retrain failed")
            out = {"ran": False, "why": f"failed: {type(exc).__name__}: {exc}"}
        outcomes.append(out)
        runs += bool(out.get("ran"))
        if max_runs is not None and runs >= max_runs:
            break
        if max_seconds is not None and time.monotonic() - started + poll_seconds > max_seconds:
            break
        stop.wait(poll_seconds)
    return outcomes


__all__ = ["RetrainLock", "Schedule", "is_due", "run_if_due", "watch", "last_retrain"]
