"""Waking the outbox's delivery loop when mail is queued, instead of at its next interval.

The loop (``service.mailer``) used to look at the outbox every ``TRIAGE_MAIL_INTERVAL``
(5 s), so a customer's "received" notice left 2-4 s after intake even on an idle desk.
Now whoever queues an outbox row rings a :class:`Doorbell`, and only once the row is
committed (a bell rung before would send the loop looking for a row it cannot see yet):

- in this process: a transaction that queued a row sets a flag in ``session.info``; the
  ``after_commit`` hook rings every bell of the process (a ``threading.Event``: no I/O);
- across processes (the other gunicorn workers, the CLI, a second host):
  PostgreSQL: a statement-level trigger on the outbox (migration 0011) notifies
  ``triage_outbox`` in the inserting transaction, at no round trip of the client's; the
  server delivers it to listeners only if that transaction commits. :func:`watch` LISTENs
  on a connection of its own and rings the bell per notification.
  SQLite: :func:`watch` polls ``PRAGMA data_version`` (it changes when any other
  connection commits; reading it costs no I/O) every ``poll`` seconds and, when it moved,
  asks whether a row has been due for longer than ``poll`` (mail this process's loop has
  not taken: queued by another process). Nothing is written for it at intake.

The interval stays as the safety net: a lost notification, a listener reconnecting or
a retry's backoff ending are all found by the next periodic pass.
"""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import timedelta

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session

from triage.store.tables import OutboxMessage, utcnow

log = logging.getLogger(__name__)
CHANNEL = "triage_outbox"  # the trigger of migration 0011 notifies it
_QUEUED = "triage.outbox_queued"  # session.info: this transaction queued an outbox row
_BELLS: weakref.WeakSet[Doorbell] = weakref.WeakSet()
RECONNECT_S = 5.0  # a lost LISTEN connection is opened again after this long


class Doorbell:
    """What the delivery loop waits on: rung by a commit that queued mail, or by :meth:`stop`."""

    def __init__(self) -> None:
        self._rung = threading.Event()
        self.stopped = threading.Event()
        _BELLS.add(self)

    def ring(self) -> None:
        self._rung.set()

    def wait(self, timeout: float) -> bool:
        """Until rung (True) or ``timeout`` seconds passed (False); then unrung again."""
        rung = self._rung.wait(timeout)
        self._rung.clear()
        return rung

    def stop(self) -> None:
        self.stopped.set()
        self._rung.set()

    # the loop passes this as deliver_due's ``stop`` (it asks ``is_set()``)
    def is_set(self) -> bool:
        return self.stopped.is_set()


def queued(session: Session) -> None:
    """Called by whoever adds an outbox row: ring the bells once this transaction commits."""
    session.info[_QUEUED] = True


def ring_all() -> None:
    for bell in list(_BELLS):
        bell.ring()


@event.listens_for(Session, "after_commit")
def _ring(session: Session) -> None:
    if session.info.pop(_QUEUED, False):
        ring_all()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_QUEUED, None)


def watch(store, bell: Doorbell, poll: float) -> threading.Thread | None:
    """A daemon thread ringing ``bell`` for rows other processes queue (None: nothing to
    watch, e.g. an in-memory SQLite database no other process can write)."""
    if poll <= 0:
        return None
    if store.dialect == "postgresql":
        target, args = _listen, (store, bell, poll)
    elif store.dialect == "sqlite" and ":memory:" not in store.url and "mode=memory" not in store.url:
        target, args = _poll_sqlite, (store, bell, poll)
    else:
        return None
    thread = threading.Thread(target=_guarded, args=(target, args, bell), name="outbox-doorbell", daemon=True)
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


def _listen(store, bell: Doorbell, poll: float) -> None:
    """LISTEN on a connection of its own (autocommit: notifications arrive between statements)."""
    import psycopg

    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        bell.ring()  # anything queued while nobody listened
        while not bell.stopped.is_set():
            for _ in conn.notifies(timeout=poll, stop_after=1):
                bell.ring()


# the oldest due row (the index ix_outbox_due answers it)
_OLDEST_DUE = select(func.min(OutboxMessage.next_attempt_at)).where(
    OutboxMessage.delivered_at.is_(None),
    OutboxMessage.next_attempt_at <= bindparam("now"),
    OutboxMessage.failed.is_(False),
)


def _poll_sqlite(store, bell: Doorbell, poll: float) -> None:
    """``PRAGMA data_version`` every ``poll`` s; after a change, and while rows are due, ring
    when one has been due for over ``poll`` s (this process's own loop would have taken a
    row it queued by then: so the other workers do not all chase every row)."""
    with store.engine.connect().execution_options(triage_readonly=True) as conn:
        seen, waiting = None, False
        while not bell.stopped.wait(poll):
            version = conn.exec_driver_sql("PRAGMA data_version").scalar()
            if version != seen or waiting:
                seen, now = version, utcnow()
                oldest = conn.execute(_OLDEST_DUE, {"now": now}).scalar()
                waiting = oldest is not None
                if waiting and oldest <= now - timedelta(seconds=poll):
                    bell.ring()
            conn.rollback()
