"""Waking the outbox's delivery loop when mail is queued, instead of at its next interval.

The loop (``service.mailer``) used to look at the outbox every ``TRIAGE_MAIL_INTERVAL``
(5 s), so a customer's "received" notice left 2-4 s after intake even on an idle desk.
Now whoever queues an outbox row rings a :class:`Doorbell`, and only once the row is
committed (a bell rung before would send the loop looking for a row it cannot see yet):

- in this process: a transaction that queued a row sets a flag in ``session.info``; the
  ``after_commit`` hook rings every bell of the process (a ``threading.Event``: no I/O);
- across processes (the other gunicorn workers, the CLI, a second host): :func:`watch`
  looks every ``poll`` seconds for a row that has been due for longer than ``poll`` (mail
  this process's loop has not taken: queued by another process), with one indexed read
  (``ix_outbox_due``). On SQLite it reads only after ``PRAGMA data_version`` moved (it
  changes when another connection commits; reading it costs no I/O). Nothing is written
  or sent for it at intake.

PostgreSQL's LISTEN/NOTIFY was tried first (a trigger on the outbox, migration 0011) and
dropped (0012): a notifying transaction takes a database-wide lock at commit and holds it
through the WAL flush, so intakes, nearly all of which queue a notice, committed one after
another, each with ~0.4 ms more server CPU (bench/README.md, "Idle rerun, round 6").

The interval stays as the safety net: a watcher reconnecting or a retry's backoff ending
are found by the next periodic pass.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import timedelta

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session

from triage.store.tables import OutboxMessage, utcnow

log = logging.getLogger(__name__)
_QUEUED = "triage.outbox_queued"  # session.info: this transaction queued an outbox row
_BELLS: weakref.WeakSet[Doorbell] = weakref.WeakSet()
ANY = frozenset({"*"})  # a ring that does not say what was queued (the watcher's, stop)
RECONNECT_S = 5.0  # a watcher whose connection failed looks again after this long


class Doorbell:
    """What the delivery loop waits on: rung by a commit that queued mail, or by :meth:`stop`.

    A ring says what was queued (:meth:`kinds`): a round rung only by this process's mail
    need not look for webhooks. ``round_at`` is when the loop last started a round (its
    ``time.monotonic()``): the watcher skips its read for a while after one (the round
    took every row that was due)."""

    def __init__(self) -> None:
        self._rung = threading.Event()
        self.stopped = threading.Event()
        self._kinds: set[str] = set()
        self.round_at = float("-inf")
        _BELLS.add(self)

    def ring(self, kinds: frozenset[str] = ANY) -> None:
        # unlocked: a race may lose a kind; a webhook then waits for the watcher (its row due
        # for over a poll) or the interval's round, as one queued by another process does
        self._kinds |= kinds
        self._rung.set()

    def wait(self, timeout: float) -> bool:
        """Until rung (True) or ``timeout`` seconds passed (False); then unrung again."""
        rung = self._rung.wait(timeout)
        self._rung.clear()
        return rung

    def kinds(self) -> set[str]:
        """What the rings since the last call said was queued (``"*"``: anything), then forgets."""
        kinds, self._kinds = self._kinds, set()
        return kinds

    def stop(self) -> None:
        self.stopped.set()
        self._rung.set()

    # the loop passes this as deliver_due's ``stop`` (it asks ``is_set()``)
    def is_set(self) -> bool:
        return self.stopped.is_set()


def queued(session: Session, kind: str = "mail") -> None:
    """Called by whoever adds an outbox row: ring the bells once this transaction commits."""
    session.info.setdefault(_QUEUED, set()).add(kind)


def ring_all(kinds: frozenset[str] = ANY) -> None:
    for bell in list(_BELLS):
        bell.ring(kinds)


@event.listens_for(Session, "after_commit")
def _ring(session: Session) -> None:
    kinds = session.info.pop(_QUEUED, None)
    if kinds:
        ring_all(frozenset(kinds))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_QUEUED, None)


def watch(store, bell: Doorbell, poll: float) -> threading.Thread | None:
    """A daemon thread ringing ``bell`` for rows other processes queue (None: nothing to
    watch, e.g. an in-memory SQLite database no other process can write)."""
    if poll <= 0 or ":memory:" in store.url or "mode=memory" in store.url:
        return None
    thread = threading.Thread(
        target=_guarded, args=(_poll, (store, bell, poll), bell), name="outbox-doorbell", daemon=True
    )
    thread.start()
    return thread


def _guarded(target, args, bell: Doorbell) -> None:
    """``target`` again after a failure (a restarted server, a dropped connection)."""
    while not bell.stopped.is_set():
        try:
            target(*args)
        except Exception:  # noqa: BLE001 - the periodic pass covers the gap
            log.warning("outbox doorbell: watching failed; again in %.0f s", RECONNECT_S, exc_info=True)
            bell.stopped.wait(RECONNECT_S)


# the oldest due row (the index ix_outbox_due answers it)
_OLDEST_DUE = select(func.min(OutboxMessage.next_attempt_at)).where(
    OutboxMessage.delivered_at.is_(None),
    OutboxMessage.next_attempt_at <= bindparam("now"),
    OutboxMessage.failed.is_(False),
)


def _poll(store, bell: Doorbell, poll: float) -> None:
    """Every ``poll`` s, while rows are due, ring when one has been due for over ``poll`` s
    (this process's own loop would have taken a row it queued by then: so the other
    workers do not all chase every row). SQLite: only after ``PRAGMA data_version`` moved.

    No read within ``poll`` s of the loop's last round: that round's claim took every row
    due for over ``poll`` s (or another worker holds it), so under load, with a round every
    few tenths of a second, the watcher reads next to nothing. PostgreSQL: the read runs
    outside a transaction (no BEGIN and ROLLBACK: one round trip, not three)."""
    sqlite = store.dialect == "sqlite"
    options = {"triage_readonly": True} if sqlite else {"isolation_level": "AUTOCOMMIT"}
    with store.engine.connect().execution_options(**options) as conn:
        seen, waiting = None, False
        while not bell.stopped.wait(poll):
            if time.monotonic() - bell.round_at < poll:
                continue
            version = conn.exec_driver_sql("PRAGMA data_version").scalar() if sqlite else None
            if not sqlite or version != seen or waiting:
                seen, now = version, utcnow()
                oldest = conn.execute(_OLDEST_DUE, {"now": now}).scalar()
                waiting = oldest is not None
                if waiting and oldest <= now - timedelta(seconds=poll):
                    bell.ring()
            conn.rollback()
