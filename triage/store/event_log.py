"""The one place a ticket event is added, and batching of the events of one unit of work.

Every change lands in ``ticket_events`` (the append-only past). Added one by
one, each event is its own ``INSERT ... RETURNING id`` at flush (the ORM wants
the id back); intake records about ten per ticket, so inside :func:`batched`
they are kept as plain rows and written at the end with one multi-row INSERT.
Nothing reads the events of a ticket while its intake is still running.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import insert
from sqlalchemy.orm import Session

from triage.store.tables import TicketEvent

_BUFFER = "triage.pending_events"


def add(session: Session, **row: Any) -> TicketEvent | None:
    """Add one event (``ticket_id, field, old, new, actor, at``), buffered inside :func:`batched`.

    Returns the event added to the session, or None when buffered (the row goes in with
    the batch; building an ORM object nobody reads cost more than the row's INSERT).
    """
    buffer = session.info.get(_BUFFER)
    if buffer is None:
        event = TicketEvent(**row)
        session.add(event)
        return event
    buffer.append(row)
    return None


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """Events added inside the block are inserted together when it ends without error."""
    if _BUFFER in session.info:  # already batching: the outer block writes them
        yield
        return
    rows: list[dict[str, Any]] = []
    session.info[_BUFFER] = rows
    try:
        yield
    finally:
        session.info.pop(_BUFFER, None)
    if rows:  # Core executemany: one statement, rows in the order they were recorded
        session.connection().execute(_INSERT, rows)


_INSERT = insert(TicketEvent.__table__)  # built once: its compiled form stays cached
