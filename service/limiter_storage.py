"""The in-process rate-limit counters: ``limits``' memory storage without a thread per hit.

``limits.storage.MemoryStorage`` drops expired entries from a ``threading.Timer`` that
fires 10 ms after a hit and is started anew by the first hit after it fired. At the
rates intake runs (one ``ticket_create`` hit every ~7-15 ms per worker) that is a new
OS thread, and a pass over every counter key, for nearly every ticket: thread starts
were the largest item of a profiled in-process intake that was not the model or the
store (bench/profile_intake_wsgi.py).

Expiry is housekeeping only: the moving window reads entries by their time
(``acquire_entry``, ``get_moving_window``) and the counters by their expiry (``get``),
so an entry kept a little longer changes no answer. Here the same pass runs inline, in
the request that finds the last one at least :data:`SWEEP_SECONDS` old, one thread at a
time; memory stays bounded as before (a key untouched for a day is dropped by the next
sweep after its entries expire).
"""

from __future__ import annotations

import threading
import time

from limits.storage import MemoryStorage

SCHEME = "triage-memory"
SWEEP_SECONDS = 1.0


class SweptMemoryStorage(MemoryStorage):
    """``memory://`` counters whose expiry runs inline at most once a second."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        self._next_sweep = 0.0
        self._sweeping = threading.Lock()
        self.sweeps = 0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    # MemoryStorage calls ``self.__schedule_expiry()`` before each hit (name-mangled to this)
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep or not self._sweeping.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + SWEEP_SECONDS
            self.sweeps += 1
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        finally:
            self._sweeping.release()


def storage_uri(configured: str) -> str:
    """The URI Flask-Limiter gets: ``memory://`` becomes this module's storage."""
    if configured.startswith("memory://"):
        return SCHEME + configured[len("memory") :]
    return configured
