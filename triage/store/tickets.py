"""Tickets: intake, lifecycle, field changes, follow-ups and their history.

Every change goes through :func:`record` so the history can never miss one:
the ticket row is the present, ``ticket_events`` the append-only past. The
lifecycle obeys ``triage.ticket.TRANSITIONS`` and nothing else; a refusal
names where the ticket is, where it was asked to go and where it may go.
"""

from __future__ import annotations

import re
import weakref
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import bindparam, event, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state

from triage.errors import InputError, NotFound, TransitionError
from triage.htmltext import as_text
from triage.store import bulk, clocks, event_log
from triage.store.tables import ID_MAX, Comment, IdempotencyKey, TicketEvent, TicketRow, Watcher, utcnow
from triage.ticket import TRANSITIONS, Channel, Status

# Fields that must be set (by model, rule or agent) before a ticket leaves ``new``.
MANDATORY = ("category", "priority", "affected_service")
# Fields an agent (or a rule) may change directly on the row.
EDITABLE = (
    "subject",
    "ticket_type",
    "category",
    "priority",
    "affected_service",
    "customer_tier",
    "team",
    "queue",
    "tags",
)
TRIAGE_QUEUE = "triage"
# Why a ticket waits (ITIL "pending"): on the customer's answer or on a third party (vendor,
# carrier, another organisation). Kept in ``extra["pending_reason"]`` and in the history.
PENDING_REASONS = ("customer", "third_party")
OPEN_STATUSES = (Status.NEW.value, Status.ASSIGNED.value, Status.IN_PROGRESS.value, Status.PENDING.value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def record(
    session: Session,
    ticket: TicketRow,
    field: str,
    old: Any,
    new: Any,
    actor: str,
    at: datetime | None = None,
) -> TicketEvent | None:
    """Append one event; the only way the history grows (None when batched: event_log)."""
    return event_log.add(
        session,
        ticket_id=ticket.id,
        field=field,
        old=_text(old),
        new=_text(new),
        actor=actor,
        at=at or utcnow(),
    )


def coerce(field: str, value: Any) -> Any:
    """A field value as stored: priority is an int 1..5 (labels like "P2" or "2 - High" too)."""
    if value is None or field != "priority":
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = re.search(r"[1-5]", str(value))
        if not match:
            raise InputError(
                "priority must be 1 (most urgent) to 5", column="priority", expected="1..5", got=value
            )
        number = int(match.group())
    if not 1 <= number <= 5:
        raise InputError(
            "priority must be 1 (most urgent) to 5", column="priority", expected="1..5", got=value
        )
    return number


def _checked_text(column: str, value: Any) -> str:
    """Text is stored as given, except NUL, which PostgreSQL cannot store: refused on both."""
    text = "" if value is None else str(value)
    if "\x00" in text:
        raise InputError(
            "text must not contain NUL characters",
            column=column,
            expected="text without U+0000",
            got="a NUL character",
        )
    return text


def fits(model, column: str, value: Any) -> Any:
    """Refuse a value longer than its column, or holding NUL (PostgreSQL would fail the whole
    transaction, SQLite would store it: the two stores must answer alike)."""
    if isinstance(value, str) and "\x00" in value:
        raise InputError(
            "text must not contain NUL characters",
            column=column,
            expected="text without U+0000",
            got="a NUL character",
        )
    limit = getattr(model.__table__.c[column].type, "length", None)
    if isinstance(value, str) and limit is not None and len(value) > limit:
        raise InputError(
            f"{column} is too long",
            column=column,
            expected=f"at most {limit} characters",
            got=f"{len(value)} characters",
        )
    return value


def get(session: Session, ticket_id: int, *, lock: bool = False) -> TicketRow:
    """The ticket, or :class:`NotFound`; ``lock`` takes a row lock (PostgreSQL) for an update."""
    if not 1 <= int(ticket_id) <= ID_MAX:  # beyond the integer column: no such ticket
        raise NotFound(f"ticket {ticket_id} not found", ticket=ticket_id)
    stmt = select(TicketRow).where(TicketRow.id == int(ticket_id))
    if lock:
        stmt = stmt.with_for_update()
    ticket = session.scalars(stmt).first()
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found", ticket=ticket_id)
    return ticket


def _claim_key(session: Session, key: str) -> int | None:
    """Claim an idempotency key; return the ticket id if another request already holds it.

    ``INSERT ... ON CONFLICT DO NOTHING`` is the arbiter (one statement, no
    savepoint): on PostgreSQL a concurrent holder makes it wait for that
    transaction and then do nothing, and we answer the holder's ticket.
    """
    claimed = event_log.memo(session)
    if claimed is not None and ("key", key) in claimed:  # this batch made its ticket: not yet written
        return claimed["key", key]
    conn = session.connection()
    if conn.execute(_claim_statement(conn.dialect.name), {"key": key, "created_at": utcnow()}).first():
        return None
    holder = conn.execute(_KEY_HOLDER, {"key_": key}).scalar()
    return holder or -1


# Core statements built once: intake runs them for every ticket, and a statement object
# keeps its compiled form cached (no ORM unit of work, no per-call cache key building).
_KEYS = IdempotencyKey.__table__
_KEY_HOLDER = select(_KEYS.c.ticket_id).where(_KEYS.c.key == bindparam("key_"))
_KEY_OWNER = update(_KEYS).where(_KEYS.c.key == bindparam("key_")).values(ticket_id=bindparam("owner"))
_CLAIMS = {
    name: dialect_insert(_KEYS).on_conflict_do_nothing().returning(_KEYS.c.key)
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_TICKETS = TicketRow.__table__
_INSERT_TICKET = insert(_TICKETS).returning(_TICKETS.c.id)
_INSERT_TICKETS_ORDERED = insert(_TICKETS).returning(_TICKETS.c.id, sort_by_parameter_order=True)
_TICKET_COLUMNS = [c.key for c in _TICKETS.columns if c.key != "id"]
_WRITTEN_COLUMNS = ["id", *_TICKET_COLUMNS]
_INSERT_TICKET_ROWS = insert(_TICKETS)  # rows with their reserved ids
# ids for new tickets, drawn from the column's own sequence (as its default would)
_SEQUENCES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()  # engine -> name
_SEQUENCE_OF_IDS = text("SELECT pg_get_serial_sequence('tickets', 'id')")
_RESERVE_IDS = text("SELECT nextval(CAST(:seq AS regclass)) FROM generate_series(1, :n)")
_UPDATABLE = frozenset(_TICKET_COLUMNS)
_NEW_TICKET = TicketRow.__mapper__.class_manager.new_instance  # an instance, no __init__


def _claim_statement(dialect: str):
    return _CLAIMS["postgresql" if dialect == "postgresql" else "sqlite"]


def _insert_ticket(session: Session, values: dict[str, Any]) -> TicketRow:
    """One Core ``INSERT ... RETURNING id``; the row joins the session as if just loaded.

    Later changes to it (fields set by the model, the rules, routing) are one UPDATE at
    commit; nothing is flushed now.
    """
    row = {name: values.get(name) for name in _TICKET_COLUMNS}
    return _loaded(session, row, session.connection().execute(_INSERT_TICKET, row).scalar_one())


def _loaded(session: Session, row: dict[str, Any], ticket_id: int, *, written: bool = True) -> TicketRow:
    """The inserted row as a session instance, built as the ORM builds a loaded row: values
    straight into the instance's dict, all marked as committed (the constructor's 22
    instrumented attribute sets cost more than the INSERT).

    ``written=False``: the row is not in the database yet (its id reserved: :func:`_reserved`);
    it goes in, as it is by then, before the batch's other rows (``event_log.before_rows``)."""
    configure_mappers()  # what the constructor would have done first (a no-op once configured)
    ticket = _NEW_TICKET()
    ticket.__dict__.update(row, id=ticket_id)
    make_transient_to_detached(ticket)
    session.add(ticket)
    memo = event_log.memo(session)
    if memo is None:
        return ticket
    kind, write = (_FRESH, _write_fresh) if written else (_UNWRITTEN, _write_unwritten)
    waiting = memo.setdefault(kind, [])
    if not waiting:
        if written:  # its field changes are written when the batch ends
            event_log.at_end(session, write)
        else:
            event_log.before_rows(session, write)
    waiting.append(ticket)
    return ticket


_FRESH = "fresh tickets"
_UNWRITTEN = "tickets not written yet"
_UPDATES: dict[tuple[str, ...], Any] = {}  # one UPDATE statement per set of changed columns


def _write_fresh(session: Session) -> None:
    """The batch's new tickets' changes (fields the model, the rules and routing set), written
    as the ORM's flush would, with one statement per set of changed columns for all of them
    (``bulk``: one execution on PostgreSQL, sent with the batch's other rows), then marked as
    stored, so the flush skips them.

    The ORM's flush costs more than the rows: a unit of work per object, and on PostgreSQL
    one execution per row. Only plain column changes of tickets still in the session are
    taken; anything else is left to the flush."""
    fresh = (event_log.memo(session) or {}).get(_FRESH) or []
    groups: dict[tuple[str, ...], list[TicketRow]] = {}
    for ticket in fresh:
        state = instance_state(ticket)
        if (
            not state.modified
            or state.session is not session
            or not state.persistent
            or state.expired_attributes
        ):
            continue
        keys = tuple(sorted(state.committed_state))
        if keys and all(key in _UPDATABLE for key in keys):
            groups.setdefault(keys, []).append(ticket)
    for keys, group in groups.items():
        statement = _UPDATES.get(keys)
        if statement is None:
            statement = _UPDATES.setdefault(
                keys,
                update(_TICKETS)
                .where(_TICKETS.c.id == bindparam("id_"))
                .values({key: bindparam(f"v_{key}") for key in keys}),
            )
        rows = [{"id_": t.id, **{f"v_{key}": t.__dict__[key] for key in keys}} for t in group]
        event_log.write_later(session, statement, rows)  # the batch's end writes it
        for ticket in group:
            instance_state(ticket)._commit_all(ticket.__dict__, session.identity_map)


def _claim_keys(session: Session, keys: list[str]) -> dict[str, int]:
    """Claim many keys with one statement; the holder of each key claimed before (-1: no owner yet).

    Keys this batch already claimed are answered from its memo (their rows are not written yet).
    """
    if not keys:
        return {}
    claimed = event_log.memo(session) or {}
    held = {key: claimed["key", key] for key in keys if ("key", key) in claimed}
    fresh = [key for key in keys if key not in held]
    if not fresh:
        return held
    conn, at = session.connection(), utcnow()
    taken = set(
        bulk.execute(
            conn, _claim_statement(conn.dialect.name), [{"key": key, "created_at": at} for key in fresh]
        ).scalars()
    )
    others = [key for key in fresh if key not in taken]
    if others:
        holders = dict(
            conn.execute(select(_KEYS.c.key, _KEYS.c.ticket_id).where(_KEYS.c.key.in_(others))).all()
        )
        held.update({key: holders.get(key) or -1 for key in others})
    return held


def _draws_ids(session: Session) -> bool:
    """Are a batch's new tickets' ids drawn before their rows are written (PostgreSQL, in a
    batch: :func:`_reserved`)?"""
    return event_log.memo(session) is not None and session.get_bind().dialect.name == "postgresql"


def _claim_keys_drawing(session: Session, keys: list[str], n: int) -> tuple[dict[str, int], list[int]]:
    """:func:`_claim_keys` and ``n`` ticket ids drawn (ascending), in one round trip (psycopg's
    pipeline): before, the claim and the draw were a round trip each, on every keyed intake.
    (The transaction's ``BEGIN`` before them is still a round trip of its own: psycopg waits
    for its answer, in a pipeline too.)

    ``n`` counts an id for every key this batch has not claimed yet: a key another request
    holds leaves its id unused (a gap in the ids, as a rolled-back ticket leaves; the
    duplicate index's catch-up asks for gaps again for a while, by primary key)."""
    claimed = event_log.memo(session) or {}
    held = {key: claimed["key", key] for key in keys if ("key", key) in claimed}
    fresh = [key for key in keys if key not in held]
    conn, at = session.connection(), utcnow()
    work: list[tuple[str, Any]] = []
    if fresh:
        claim = bulk.driver_form(
            conn, _claim_statement("postgresql"), [{"key": key, "created_at": at} for key in fresh]
        )
        if claim is None:  # not expected (the claim has its unnest form): as before
            held.update(_claim_keys(session, fresh))
            fresh = []
        else:
            work.append(claim)
    if n > 0:
        work.append((_RESERVE_IDS_SQL, (_id_sequence(conn), n)))
    if not work:
        return held, []
    results = bulk.fetch_pipelined(conn, work)
    ids = sorted(row[0] for row in results[-1]) if n > 0 else []
    if fresh:
        taken = {row[0] for row in results[0]}
        others = [key for key in fresh if key not in taken]
        if others:  # claimed earlier by another request: its ticket (or -1: still running)
            holders = dict(
                conn.execute(select(_KEYS.c.key, _KEYS.c.ticket_id).where(_KEYS.c.key.in_(others))).all()
            )
            held.update({key: holders.get(key) or -1 for key in others})
    return held, ids


# _RESERVE_IDS as driver SQL (for the pipeline of _claim_keys_drawing)
_RESERVE_IDS_SQL = "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"


def _insert_tickets(session: Session, rows: list[dict[str, Any]], *, defer: bool = False) -> list[TicketRow]:
    """Many new tickets with one ``INSERT ... RETURNING id``, in the order of ``rows``
    (``defer``: on PostgreSQL in a batch, their ids reserved now and their rows written
    later, as they are then: :func:`_reserved`)."""
    if defer and rows and event_log.memo(session) is not None:
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            return _reserved(session, conn, rows)
    if len(rows) <= 1:
        return [_insert_ticket(session, row) for row in rows]
    full = [{name: row.get(name) for name in _TICKET_COLUMNS} for row in rows]
    conn = session.connection()
    # ids ascend in the rows' order: SQLite gives rowids in VALUES order while it holds the
    # write lock; on PostgreSQL the rows are inserted in that order (bulk: INSERT ... SELECT
    # ... ORDER BY), each taking the next serial value. So the sorted ids are that order.
    statement = _INSERT_TICKETS_ORDERED if conn.dialect.name == "postgresql" else _INSERT_TICKET
    ids = sorted(bulk.execute(conn, statement, full).scalars())
    return [_loaded(session, row, ticket_id) for row, ticket_id in zip(full, ids)]


def _reserved(
    session: Session, conn, rows: list[dict[str, Any]], drawn: list[int] | None = None
) -> list[TicketRow]:
    """New tickets whose ids are drawn now (one statement) and whose rows are inserted when
    the batch writes its rows, with the fields the model, the rules and routing set by then.

    Inserted then updated, each ticket was written twice: the UPDATE (``team`` and ``queue``
    are indexed, so never a HOT update) wrote a second row version and every index entry
    again, the full-text index's ``to_tsvector`` included: on PostgreSQL the most expensive
    statement of a group, 0.18 of the server's 0.60 ms per ticket (bench/README.md, round 7).
    Until it is written, the row is not there for a read; whatever could need it in the
    database first (an ORM flush: :func:`_unwritten_first`; the rows of ``event_log.unbatched``)
    writes it first."""
    full = [{name: row.get(name) for name in _TICKET_COLUMNS} for row in rows]
    if drawn is None:
        drawn = sorted(conn.execute(_RESERVE_IDS, {"seq": _id_sequence(conn), "n": len(full)}).scalars())
    ids = drawn[: len(full)]  # ascending: the rows' order (those past them: keys held by others)
    return [_loaded(session, row, ticket_id, written=False) for row, ticket_id in zip(full, ids)]


def _id_sequence(conn) -> str:
    """The tickets' id sequence, schema-qualified, looked up once per engine (its connections
    share one search_path) and process.

    Named in the statement itself (``pg_get_serial_sequence`` per row, ``nextval`` of a text),
    the lookups cost more server CPU than the draw: a catalog scan of ``pg_depend`` and a name
    search per call, 0.13 ms per ticket in groups of two (bench/README.md, round 7)."""
    name = _SEQUENCES.get(conn.engine)
    if name is None:
        name = _SEQUENCES[conn.engine] = conn.execute(_SEQUENCE_OF_IDS).scalar_one()
    return name


def _write_unwritten(session: Session) -> event_log.Work:
    """The batch's reserved tickets not written yet, as they are now, marked as stored."""
    memo = event_log.memo(session) or {}
    waiting, memo[_UNWRITTEN] = memo.get(_UNWRITTEN) or [], []
    rows = []
    for ticket in waiting:
        state = instance_state(ticket)
        if state.session is not session:  # expunged: nothing to write
            continue
        rows.append({name: ticket.__dict__.get(name) for name in _WRITTEN_COLUMNS})
        state._commit_all(ticket.__dict__, session.identity_map)
    return [(_INSERT_TICKET_ROWS, rows)] if rows else []


@event.listens_for(Session, "before_flush")
def _unwritten_first(session: Session, _context, _instances) -> None:
    """A flush before the batch's end (a query's autoflush; an object referencing a new
    ticket) would UPDATE a reserved ticket's row, or insert a row that references it, before
    the row is there: it is written first."""
    memo = event_log.memo(session)
    if memo and memo.get(_UNWRITTEN):
        bulk.execute_all(session.connection(), _write_unwritten(session))


def _tickets_by_id(session: Session, ids: set[int]) -> dict[int, TicketRow]:
    if not ids:
        return {}
    return {t.id: t for t in session.scalars(select(TicketRow).where(TicketRow.id.in_(ids)))}


def create(
    session: Session,
    data: dict[str, Any],
    *,
    actor: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[TicketRow, bool]:
    """Store a new ticket from any channel; returns ``(ticket, created)``.

    With ``idempotency_key`` a retry answers the first ticket (``created`` is
    False) instead of making a second one.
    """
    now = now or utcnow()
    if idempotency_key:
        held = _claim_key(session, idempotency_key)
        if held is not None:
            return _held(session, idempotency_key, held), False
    ticket = _insert_ticket(session, _new_row(data, now))
    _created(session, ticket, data, actor, idempotency_key, now)
    return ticket, True


def create_many(
    session: Session, items: list[tuple[dict[str, Any], str, str | None, datetime]], *, defer: bool = False
) -> list[tuple[TicketRow, bool] | Exception]:
    """:func:`create` for many tickets (``(data, actor, key, now)`` each) in one transaction.

    The same answers as one :func:`create` after the other, with one statement per table:
    every key claimed by one ``INSERT ... ON CONFLICT DO NOTHING``, the holders of keys taken
    earlier read by one SELECT, the new tickets inserted by one ``INSERT ... RETURNING id``.
    A key given twice makes one ticket (the second answers it, ``created`` False). An entry is
    the item's exception when it alone is bad (its ticket may be written: the caller rolls the
    transaction back, as group commit does, and reruns the others).

    ``defer`` (intake's groups, whose jobs read no new ticket back by a query): on PostgreSQL
    the new tickets' ids are drawn instead, and their rows inserted with the batch's other
    rows, fields and all (:func:`_reserved`); a mail poll's jobs look earlier messages' tickets
    up, so theirs are inserted at once.
    """
    out: list[tuple[TicketRow, bool] | Exception | None] = [None] * len(items)
    rows: dict[int, dict[str, Any]] = {}
    for i, (data, _, _, now) in enumerate(items):
        try:
            rows[i] = _new_row(data, now)
        except InputError as exc:  # before any key is claimed for it
            out[i] = exc
    claimant: dict[str, int] = {}  # key -> the first good item giving it
    for i in rows:
        key = items[i][2]
        if key:
            claimant.setdefault(key, i)
    drawn: list[int] | None = None  # ids drawn with the keys' claim (PostgreSQL, deferred rows)
    if defer and _draws_ids(session):
        memo = event_log.memo(session) or {}
        wanted = sum(1 for i in rows if not items[i][2] or claimant[items[i][2]] == i)
        wanted -= sum(1 for key in claimant if ("key", key) in memo)
        held, drawn = _claim_keys_drawing(session, sorted(claimant), wanted)
    else:
        held = _claim_keys(session, sorted(claimant))  # one order for every writer: no deadlock
    answers = _tickets_by_id(session, {h for h in held.values() if h > 0})
    new = [i for i in rows if not items[i][2] or (claimant[items[i][2]] == i and items[i][2] not in held)]
    made = (
        _reserved(session, session.connection(), [rows[i] for i in new], drawn)
        if drawn is not None
        else _insert_tickets(session, [rows[i] for i in new], defer=defer)
    )
    for i, ticket in zip(new, made):
        data, actor, key, now = items[i]
        try:
            _created(session, ticket, data, actor, key, now)
        except InputError as exc:  # a bad watcher: this ticket fails alone
            out[i] = exc
            continue
        out[i] = (ticket, True)
    for i in rows:
        key = items[i][2]
        if out[i] is not None or not key:
            continue
        if key in held:
            try:
                out[i] = (_held(session, key, held[key], answers), False)
            except Exception as exc:  # noqa: BLE001 - still running, or gone: this item's answer
                out[i] = exc
        else:
            first = out[claimant[key]]
            out[i] = (first[0], False) if isinstance(first, tuple) else first
    return [entry for entry in out if entry is not None]


def _new_row(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The new ticket's row as stored, or :class:`InputError` for what cannot be stored."""
    channel = str(data.get("channel") or Channel.API.value)
    if channel not in {c.value for c in Channel}:
        raise InputError(
            "unknown channel", column="channel", expected="|".join(c.value for c in Channel), got=channel
        )
    return {
        "subject": _checked_text("subject", data.get("subject")),
        "body": _checked_text("body", as_text(data.get("body"))),  # HTML as mail converts it
        "channel": channel,
        "requester": fits(TicketRow, "requester", data.get("requester")),
        "status": Status.NEW.value,
        "queue": TRIAGE_QUEUE,
        "customer_tier": fits(TicketRow, "customer_tier", data.get("customer_tier")),
        "extra": dict(data.get("extra") or {}),
        "tags": _tags(data.get("tags")),
        "escalation_level": 0,
        "created_at": now,
        "updated_at": now,
    }


def _created(
    session: Session, ticket: TicketRow, data: dict[str, Any], actor: str, key: str | None, now: datetime
) -> None:
    """What follows a new ticket's INSERT: its first event, its watchers, its key's owner."""
    record(session, ticket, "created", None, ticket.channel, actor, now)
    add_watchers(session, ticket, data.get("watchers") or [])
    if key:
        _own_key(session, key, ticket.id)


def _held(session: Session, key: str, holder: int, known: dict[int, TicketRow] | None = None) -> TicketRow:
    """The ticket of a key claimed earlier (``holder`` < 0: claimed, not yet owned)."""
    if holder < 0:
        raise TransitionError("a request with this Idempotency-Key is still running", key=key)
    if known is not None and holder in known:
        return known[holder]
    return get(session, holder)


def _own_key(session: Session, key: str, ticket_id: int) -> None:
    """The claimed key names its ticket: at once, or with the batch's other rows (then the
    batch's memo answers a replay of the key within the batch)."""
    claimed = event_log.memo(session)
    if claimed is None:
        session.connection().execute(_KEY_OWNER, {"key_": key, "owner": ticket_id})
        return
    claimed["key", key] = ticket_id
    event_log.write_later(session, _KEY_OWNER, [{"key_": key, "owner": ticket_id}])


def set_fields(
    session: Session,
    ticket: TicketRow,
    changes: dict[str, Any],
    *,
    actor: str,
    now: datetime | None = None,
    retime: bool = True,
) -> list[str]:
    """Change editable fields, one event each; returns the names that really changed.

    ``retime=False`` (intake, before the clocks start) skips the SLA re-target.
    """
    now = now or utcnow()
    changed = []
    for field, value in changes.items():
        if field not in EDITABLE:
            raise InputError(
                f"field {field!r} cannot be changed here",
                column=field,
                expected="one of " + ", ".join(EDITABLE),
                got=field,
            )
        value = fits(TicketRow, field, coerce(field, value)) if field != "tags" else _tags(value)
        old = getattr(ticket, field)
        if old == value:
            continue
        setattr(ticket, field, value)
        record(session, ticket, field, old, value, actor, now)
        changed.append(field)
        if field == "priority" and retime:
            clocks.retarget(session, ticket, now)
    if changed:
        ticket.updated_at = now
    return changed


def edit(
    session: Session, ticket: TicketRow, changes: dict[str, Any], *, actor: str, now: datetime | None = None
) -> list[str]:
    """A person's change: like :func:`set_fields`, plus feedback on predicted fields."""
    from triage.store import feedback

    now = now or utcnow()
    before = {f: getattr(ticket, f) for f in changes if f in EDITABLE}
    changed = set_fields(session, ticket, changes, actor=actor, now=now)
    for field in before:
        # a person who sends the value already there (applied by the model, routed by a rule)
        # confirms it: agreement is a label too, counted once per field
        if field in changed or not feedback.has_label(session, ticket.id, field):
            feedback.record_change(
                session, ticket, field, before[field], getattr(ticket, field), by=actor, now=now
            )
    if (
        ticket.queue == TRIAGE_QUEUE
        and ticket.team
        and not missing_mandatory(ticket)
        and "queue" not in changes
    ):
        set_fields(session, ticket, {"queue": ticket.team}, actor=actor, now=now)
        changed.append("queue")  # triaged: it leaves the triage queue for its team's
    return changed


def missing_mandatory(ticket: TicketRow) -> list[str]:
    return [f for f in MANDATORY if getattr(ticket, f) in (None, "")]


def transition(
    session: Session,
    ticket: TicketRow,
    to: str | Status,
    *,
    actor: str,
    now: datetime | None = None,
    resolution: str | None = None,
    reason: str | None = None,
) -> TicketRow:
    """Move along the lifecycle table, or raise :class:`TransitionError` saying why not.

    ``reason`` says why a ticket goes ``pending`` (one of ``PENDING_REASONS``).
    """
    now = now or utcnow()
    old, new = Status(ticket.status), _status(to)
    if reason is not None and (new is not Status.PENDING or reason not in PENDING_REASONS):
        raise InputError(
            "a reason is given only for pending: customer or third_party",
            column="reason",
            expected="|".join(PENDING_REASONS) + " with to=pending",
            got=reason,
        )
    fits(TicketRow, "resolution", resolution)
    allowed = sorted(s.value for s in TRANSITIONS[old])
    if new not in TRANSITIONS[old]:
        raise TransitionError(
            f"cannot move ticket {ticket.id} from {old.value} to {new.value}; allowed: {', '.join(allowed)}",
            ticket=ticket.id,
            **{"from": old.value, "to": new.value},
            allowed=allowed,
        )
    if old is Status.NEW:
        missing = missing_mandatory(ticket)
        if missing:
            raise TransitionError(
                f"ticket {ticket.id} cannot leave new before {', '.join(missing)} are set",
                ticket=ticket.id,
                **{"from": old.value, "to": new.value},
                missing=missing,
            )
    if new is Status.ASSIGNED and not ticket.assignee:
        raise TransitionError(
            f"ticket {ticket.id} needs an assignee to be assigned (use assign)",
            ticket=ticket.id,
            **{"from": old.value, "to": new.value},
        )
    ticket.status = new.value
    ticket.updated_at = now
    record(session, ticket, "status", old.value, new.value, actor, now)
    _pending_reason(session, ticket, reason if new is Status.PENDING else None, actor, now)
    _stamp(session, ticket, old, new, actor, now, resolution)
    clocks.on_transition(session, ticket, old.value, new.value, now)
    if new is Status.RESOLVED:
        from triage.store import notices

        notices.resolved(session, ticket, now)
    return ticket


def _pending_reason(
    session: Session, ticket: TicketRow, reason: str | None, actor: str, now: datetime
) -> None:
    extra = dict(ticket.extra or {})
    old = extra.get("pending_reason")
    if old == reason:
        return
    if reason is None:
        extra.pop("pending_reason", None)
    else:
        extra["pending_reason"] = reason
    ticket.extra = extra  # a new dict: the JSON column notices the change
    record(session, ticket, "pending_reason", old, reason, actor, now)


def _status(value: str | Status) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise InputError(
            "unknown status", column="status", expected="|".join(s.value for s in Status), got=value
        ) from None


def _stamp(
    session: Session,
    ticket: TicketRow,
    old: Status,
    new: Status,
    actor: str,
    now: datetime,
    resolution: str | None,
) -> None:
    """Resolution/closure times and the resolution code follow the status."""
    if new is Status.RESOLVED:
        ticket.resolved_at = now
    if new is Status.CLOSED:
        ticket.closed_at = now
        if ticket.resolved_at is None:
            ticket.resolved_at = now
    if new in (Status.RESOLVED, Status.CLOSED) and resolution != ticket.resolution:
        if resolution is not None:
            record(session, ticket, "resolution", ticket.resolution, resolution, actor, now)
            ticket.resolution = resolution
    if old in (Status.RESOLVED, Status.CLOSED) and new is Status.IN_PROGRESS:  # reopen
        record(session, ticket, "reopened", old.value, new.value, actor, now)
        if ticket.resolution is not None:
            record(session, ticket, "resolution", ticket.resolution, None, actor, now)
        ticket.resolved_at = ticket.closed_at = ticket.resolution = None


def add_comment(
    session: Session,
    ticket: TicketRow,
    *,
    author: str,
    body: str,
    public: bool = True,
    channel: str = "api",
    message_id: str | None = None,
    by_agent: bool = False,
    now: datetime | None = None,
) -> tuple[Comment, bool]:
    """A follow-up; the first public agent reply stops the first-response clock.

    An e-mail whose ``message_id`` is already stored is the same message
    delivered twice: the stored comment is returned with ``created`` False.
    """
    now = now or utcnow()
    if message_id:
        found = session.scalars(select(Comment).where(Comment.message_id == message_id)).first()
        if found is not None:
            return found, False
    fits(Comment, "message_id", message_id)
    comment = Comment(
        ticket_id=ticket.id,
        author=fits(Comment, "author", author),
        body=_checked_text("body", as_text(body)),
        public=public,
        channel=channel,
        message_id=message_id,
        created_at=now,
    )
    session.add(comment)
    session.flush()
    record(session, ticket, "comment", None, comment.id, author, now)
    ticket.updated_at = now
    if by_agent and public and ticket.first_response_at is None:
        ticket.first_response_at = now
        record(session, ticket, "first_response_at", None, now.isoformat(), author, now)
        clocks.stop(session, ticket, clocks.FIRST_RESPONSE, now)
    if by_agent and public:
        from triage.store import notices

        notices.reply(session, ticket, comment, now=now)
    return comment, True


def customer_replied(session: Session, ticket: TicketRow, *, actor: str, now: datetime | None = None) -> None:
    """The customer answered: a ticket pending on them, or resolved, goes back to work."""
    if ticket.status in (Status.PENDING.value, Status.RESOLVED.value):
        transition(session, ticket, Status.IN_PROGRESS, actor=actor, now=now)


def _tags(values: Any) -> list[str]:
    """Tags as stored: a list of non-empty texts without NUL (JSON column, bounded item size)."""
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise InputError(
            "tags must be a list of texts", column="tags", expected="array", got=type(values).__name__
        )
    out = []
    for value in values:
        if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 100:
            raise InputError(
                "each tag must be a non-empty text of at most 100 characters without NUL",
                column="tags",
                expected="text",
                got=value,
            )
        out.append(value)
    return out


def add_watchers(session: Session, ticket: TicketRow, addresses: Iterable[Any]) -> int:
    """Watch a ticket by many addresses at once: one SELECT and one INSERT, not one each.

    Returns how many were new; duplicates (given twice, or already watching) are no-ops.
    """
    wanted: list[str] = []
    for address in addresses:
        if not isinstance(address, str) or not address.strip():
            raise InputError(
                "a watcher must be a non-empty text",
                column="watchers",
                expected="e-mail address or user id",
                got=address,
            )
        fits(Watcher, "address", address)
        if address not in wanted:
            wanted.append(address)
    if not wanted:
        return 0
    have = set(
        session.scalars(
            select(Watcher.address).where(Watcher.ticket_id == ticket.id, Watcher.address.in_(wanted))
        )
    )
    new = [Watcher(ticket_id=ticket.id, address=a) for a in wanted if a not in have]
    session.add_all(new)
    session.flush()
    return len(new)


def add_watcher(session: Session, ticket: TicketRow, address: str) -> bool:
    """Watch a ticket; watching twice is a no-op (unique per ticket and address)."""
    exists = session.scalars(
        select(Watcher).where(Watcher.ticket_id == ticket.id, Watcher.address == address)
    ).first()
    if exists is not None:
        return False
    session.add(Watcher(ticket_id=ticket.id, address=fits(Watcher, "address", address)))
    session.flush()
    return True


def history(session: Session, ticket_id: int) -> list[TicketEvent]:
    """Every recorded change of one ticket, oldest first."""
    get(session, ticket_id)
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == int(ticket_id)).order_by(TicketEvent.id)
    return list(session.scalars(stmt))


def comments(session: Session, ticket_id: int, *, public_only: bool = False) -> list[Comment]:
    stmt = select(Comment).where(Comment.ticket_id == int(ticket_id)).order_by(Comment.id)
    if public_only:
        stmt = stmt.where(Comment.public.is_(True))
    return list(session.scalars(stmt))


def watchers(session: Session, ticket_id: int) -> list[str]:
    stmt = select(Watcher.address).where(Watcher.ticket_id == int(ticket_id)).order_by(Watcher.id)
    return list(session.scalars(stmt))


def query(
    session: Session,
    *,
    queue: str | None = None,
    status: Iterable[str] | None = None,
    requester: str | None = None,
    teams: Iterable[str] | None = None,
    assignee: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[TicketRow]:
    """Tickets filtered the way queues and portals need, most urgent first."""
    stmt = select(TicketRow)
    if queue:
        stmt = stmt.where(TicketRow.queue == queue)
    if status:
        stmt = stmt.where(TicketRow.status.in_(list(status)))
    if requester is not None:
        stmt = stmt.where(TicketRow.requester == requester)
    if teams is not None:
        stmt = stmt.where(TicketRow.queue.in_(list(teams)) | TicketRow.team.in_(list(teams)))
    if assignee:
        stmt = stmt.where(TicketRow.assignee == assignee)
    stmt = stmt.order_by(
        TicketRow.escalation_level.desc(), TicketRow.priority.asc().nulls_last(), TicketRow.id
    )  # escalated first: that is how escalations are raised
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def to_dict(ticket: TicketRow) -> dict[str, Any]:
    """The ticket as JSON data (text as given: escaping is the page's job)."""
    iso = lambda t: t.isoformat() if t else None  # noqa: E731
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "body": ticket.body,
        "channel": ticket.channel,
        "requester": ticket.requester,
        "status": ticket.status,
        "ticket_type": ticket.ticket_type,
        "category": ticket.category,
        "priority": ticket.priority,
        "affected_service": ticket.affected_service,
        "customer_tier": ticket.customer_tier,
        "team": ticket.team,
        "queue": ticket.queue,
        "assignee": ticket.assignee,
        "resolution": ticket.resolution,
        "tags": list(ticket.tags or []),
        "extra": dict(ticket.extra or {}),
        "escalation_level": ticket.escalation_level,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "first_response_at": iso(ticket.first_response_at),
        "resolved_at": iso(ticket.resolved_at),
        "closed_at": iso(ticket.closed_at),
    }


def event_dict(event: TicketEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "ticket_id": event.ticket_id,
        "field": event.field,
        "old": event.old,
        "new": event.new,
        "actor": event.actor,
        "at": event.at.isoformat(),
    }
