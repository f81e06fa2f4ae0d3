"""The one place a ticket event is added, and batching of the rows of one unit of work.

Every change lands in ``ticket_events`` (the append-only past). Added one by
one, each event is its own ``INSERT ... RETURNING id`` at flush (the ORM wants
the id back); intake records about ten per ticket, so inside :func:`batched`
they are kept as plain rows and written at the end with one multi-row INSERT.
The other rows intake writes and nobody reads back in the same unit of work (SLA
clocks, predictions, the outbox row of the received notice) go the same way
through :func:`write_later`. Group commit (``triage.store.group``) opens one
batch around all the tickets of a transaction, so each table gets one multi-row
INSERT per group rather than one per ticket. Code that reads such rows back, or
may roll a SAVEPOINT back, runs inside :func:`unbatched`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from sqlalchemy import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

from triage.store import bulk
from triage.store.tables import TicketEvent

_BUFFER = "triage.pending_events"
_DEFERRED = "triage.pending_rows"
_MEMO = "triage.batch_memo"
_ENDS = "triage.batch_ends"
_FIRST = "triage.batch_first"

Work = list[tuple[Executable, list[dict[str, Any]]]]  # (statement, rows) in the order to run


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


def write_later(session: Session, statement: Executable, rows: list[dict[str, Any]]) -> None:
    """Rows for ``statement`` (a Core INSERT or UPDATE built once), executed when the batch
    ends (each statement once, with every row, in the order first given); at once outside
    a batch. Only for rows nothing reads back before then."""
    if not rows:
        return
    pending = session.info.get(_DEFERRED)
    if pending is None:
        session.connection().execute(statement, rows)
        return
    pending.setdefault(statement, []).extend(rows)


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """Events and later rows added inside the block are inserted when it ends without error."""
    if _BUFFER in session.info:  # already batching: the outer block writes them
        yield
        return
    rows: list[dict[str, Any]] = []
    later: dict[Executable, list[dict[str, Any]]] = {}
    ends: list[Callable[[Session], None]] = []
    session.info[_BUFFER], session.info[_DEFERRED], session.info[_MEMO] = rows, later, {}
    session.info[_ENDS], session.info[_FIRST] = ends, []
    try:
        yield
        for end in ends:  # still inside: an end may read the memo
            end(session)
        first = _first(session)
    finally:
        for name in (_BUFFER, _DEFERRED, _MEMO, _ENDS, _FIRST):
            session.info.pop(name, None)
    _write(session, rows, later, first)


def at_end(session: Session, end: Callable[[Session], None]) -> bool:
    """Run ``end(session)`` once when the outermost batch ends without error (before its rows
    are written); False outside a batch (nothing registered)."""
    return _register_once(session, _ENDS, end)


def before_rows(session: Session, rows: Callable[[Session], Work]) -> bool:
    """``rows(session)`` gives statements to run before the batch's rows wherever they are
    written (its end, or :func:`unbatched`): rows the others reference, built only then (the
    new tickets of a group on PostgreSQL, with the fields set since). Once per batch; False
    outside one."""
    return _register_once(session, _FIRST, rows)


def _register_once(session: Session, key: str, fn: Callable) -> bool:
    """Add ``fn`` to the batch's list under ``key`` unless there already; False outside a batch."""
    registered = session.info.get(key)
    if registered is None:
        return False
    if fn not in registered:
        registered.append(fn)
    return True


def _first(session: Session) -> Work:
    return [item for rows in session.info.get(_FIRST) or [] for item in rows(session)]


def memo(session: Session) -> dict[Any, Any] | None:
    """A dict that lives as long as the outermost batch (None outside one): for what the
    batch's deferred rows would have told a reader (e.g. which ticket claimed a key)."""
    return session.info.get(_MEMO)


@contextmanager
def unbatched(session: Session) -> Iterator[None]:
    """Inside: what is pending is written first, then every event and row goes in at once.

    For code that reads rows back (a clock re-targeted) or may roll a SAVEPOINT back
    (an assignment attempt): a buffered row would be missed by the one and outlive the other.
    """
    if _BUFFER not in session.info or _DEFERRED not in session.info:
        yield
        return
    first = _first(session)  # while the batch's memo is there
    rows, later = session.info.pop(_BUFFER), session.info.pop(_DEFERRED)
    try:
        _write(session, rows, later, first)
        rows.clear()
        later.clear()
        yield
    finally:
        session.info[_BUFFER], session.info[_DEFERRED] = rows, later


def _write(
    session: Session,
    rows: list[dict[str, Any]],
    later: dict[Executable, list[dict[str, Any]]],
    first: Work,
) -> None:
    """``first`` (:func:`before_rows`), then each statement once with all its rows (``bulk``:
    one unnest statement each on PostgreSQL, all of them sent in one round trip)."""
    work = first + list(later.items())  # each references tickets inserted already, or first
    if rows:  # rows in the order they were recorded
        work.append((_INSERT, rows))
    if work:
        bulk.execute_all(session.connection(), work)


_INSERT = insert(TicketEvent.__table__)  # built once: its compiled form stays cached
