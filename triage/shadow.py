"""Shadow mode: a challenger Triager runs beside the champion; its answers are kept apart.

Why: a challenger that wins on the frozen holdout may still behave differently on this
week's tickets. Running it on live traffic, with its predictions stored but never applied,
shows how often it agrees with the champion and, once agents have set the final labels,
which of the two was right more often, before anyone promotes it.

Two promises, both kept here rather than trusted to callers:

* the champion's results are never changed: :func:`classify_with_shadow` returns the
  shadow results separately, and a challenger that fails yields ``None`` (logged), never
  an exception on the serving path;
* shadow work never slows the champion's answer: :class:`ShadowQueue` runs the challenger
  on a background thread behind a bounded queue, and drops (and counts) work when full.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .ticket import Ticket

log = logging.getLogger(__name__)


class ShadowRunner:
    """A challenger Triager, loaded lazily once, that never raises into its caller."""

    def __init__(self, loader: Callable[[], Any]) -> None:
        self._loader = loader
        self._triager = None
        self._lock = threading.Lock()
        self.error: str | None = None

    @classmethod
    def from_bundle(cls, path: str | Path, encoder=None, signing_key=None) -> "ShadowRunner":
        from .predict import Triager

        return cls(lambda: Triager.from_bundle(path, encoder=encoder, signing_key=signing_key))

    @property
    def triager(self):
        with self._lock:
            if self._triager is None and self.error is None:
                try:
                    self._triager = self._loader()
                except Exception as exc:  # noqa: BLE001 - a broken challenger must not break serving
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.error("shadow bundle not loaded: %s", self.error)
            return self._triager

    @property
    def bundle_id(self) -> str | None:
        tri = self.triager
        return None if tri is None else tri.bundle_id

    def classify(self, tickets: Sequence[Ticket]) -> list[dict] | None:
        tri = self.triager
        if tri is None or not tickets:
            return None
        try:
            return tri.classify(list(tickets))
        except Exception:  # noqa: BLE001
            log.exception("shadow classify failed (champion results unaffected)")
            return None


def classify_with_shadow(
    champion, shadow: ShadowRunner | None, tickets: Sequence[Ticket]
) -> tuple[list[dict], list[dict] | None]:
    """(champion results, shadow results or None): the champion's are what the caller acts on."""
    results = champion.classify(list(tickets))
    return results, (shadow.classify(tickets) if shadow is not None else None)


@dataclass
class ShadowJob:
    tickets: list[Ticket]
    champion: list[dict | None]  # the champion's result per ticket (for agreement)
    ticket_ids: list[int | None]  # store ids, None for bare classify calls
    source: str = "ticket"


class ShadowQueue:
    """Runs shadow classifications off the request path and hands results to ``sink``.

    ``sink(job, shadow_results)`` stores them (the service passes a store writer).
    ``maxsize`` bounds memory when the challenger is slower than traffic: extra jobs are
    dropped and counted in ``dropped``, the champion's latency never pays for them.
    """

    def __init__(
        self, runner: ShadowRunner, sink: Callable[[ShadowJob, list[dict]], None], *, maxsize: int = 1000
    ) -> None:
        self.runner = runner
        self.sink = sink
        self.dropped = 0
        self.done = 0
        self.failed = 0
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, job: ShadowJob) -> bool:
        self._ensure_thread()
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="triage-shadow", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                results = self.runner.classify(job.tickets)
                if results is not None:
                    self.sink(job, results)
                    self.done += 1
            except Exception:  # noqa: BLE001 - keep the worker alive
                self.failed += 1
                log.exception("shadow job failed")
            finally:
                self._queue.task_done()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted job is handled (tests, graceful shutdown)."""
        done = threading.Event()

        def wait():
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def status(self) -> dict:
        return {
            "bundle_id": self.runner.bundle_id,
            "error": self.runner.error,
            "queued": self._queue.qsize(),
            "done": self.done,
            "failed": self.failed,
            "dropped": self.dropped,
        }


__all__ = ["ShadowRunner", "ShadowQueue", "ShadowJob", "classify_with_shadow"]
