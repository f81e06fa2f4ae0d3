"""Mail through the outbox: queued in the transaction of its cause, sent later, never twice.

The same ``outbox`` table and the same lease-and-retry rules as webhooks
(``triage.store.webhooks``): a mail is a row written together with the change
that causes it (a ticket received, an agent's reply, a resolution), so a crash
can neither lose it nor send one for a change that rolled back. Delivery claims
due rows under a lease (``SKIP LOCKED`` on PostgreSQL, SQLite's write lock),
sends them outside any transaction and records the outcome.

The Message-ID and the thread headers are fixed the first time a row is
claimed and kept in the row, so a retry resends the very same mail (a receiver,
our own intake included, recognises it) and a customer's answer to it threads
back to the ticket (:func:`thread_ticket`).
"""

from __future__ import annotations

import email.utils
import logging
import re
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import (
    ARRAY,
    Integer,
    and_,
    any_,
    bindparam,
    cast,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from triage.store import bulk, doorbell, event_log
from triage.store.tables import Comment, OutboxMessage, TicketRow, utcnow
from triage.store.webhooks import (
    LEASE,
    OUTCOMES_EVERY,
    OUTCOMES_PER_TRANSACTION,
    record_all_sent,
    record_outcomes,
)

KIND = "mail"
log = logging.getLogger(__name__)
MAX_REFERENCES = 10
STAFF_EVENTS = ("mail.deadline", "mail.signin")  # not part of a customer's conversation
# One plain address: no display name, no list, nothing a header could be built from.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def mail_address(value: Any) -> str | None:
    """``value`` as one safe e-mail address, or None (requesters are ids as often as addresses)."""
    text = str(value or "").strip().lower()
    return text if len(text) <= 254 and _ADDRESS.match(text) else None


def queue(session: Session, template: str, to: list[str], **details: Any) -> OutboxMessage | None:
    """Queue one mail; None when there is nobody to send to or ``dedupe_key`` was queued before.

    ``details`` are :func:`_mail_row`'s (subject, context, ticket_id, dedupe_key, ...).
    """
    values = _mail_row(session, template, to, **details)
    if values is None:
        return None
    row = OutboxMessage(**values)
    session.add(row)
    session.flush()
    return row


def queue_quietly(session: Session, template: str, to: list[str], **details: Any) -> bool:
    """:func:`queue` as one Core INSERT, for callers that need no row back (intake's notice).

    No ORM object, no flush, no dedupe SELECT: the row goes in with the transaction's other
    writes (inside an ``event_log.batched`` block, with the batch's) as ``INSERT ... ON
    CONFLICT DO NOTHING``, so the unique ``dedupe_key`` makes a second one a no-op in the
    database. Returns whether a mail was handed in (someone to send to).
    """
    values = _mail_row(session, template, to, checked=False, **details)
    if values is None:
        return False
    dialect = session.get_bind().dialect.name
    event_log.write_later(
        session, _INSERT_ONCE["postgresql" if dialect == "postgresql" else "sqlite"], [values]
    )
    return True


_OUTBOX = OutboxMessage.__table__
_INSERT_ONCE = {
    name: dialect_insert(_OUTBOX).on_conflict_do_nothing(index_elements=[_OUTBOX.c.dedupe_key])
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_QUEUED = select(_OUTBOX.c.id).where(_OUTBOX.c.dedupe_key == bindparam("key"))


def _mail_row(
    session: Session,
    template: str,
    to: list[str],
    *,
    subject: str,
    context: dict[str, Any],
    ticket_id: int | None = None,
    dedupe_key: str | None = None,
    auto_submitted: str = "auto-generated",
    attachments: list[dict] | None = None,
    now: datetime | None = None,
    checked: bool = True,
) -> dict[str, Any] | None:
    """The outbox row's values, or None: nobody to send to, or ``dedupe_key`` queued before
    (asked of the table unless ``checked`` is False: the caller's INSERT does the check)."""
    recipients = sorted({a for a in (mail_address(x) for x in to) if a})
    if not recipients:
        return None
    if dedupe_key is not None and checked:
        # earlier queue() calls flushed their rows, so the table (not the session) is what to ask
        if session.connection().execute(_QUEUED, {"key": dedupe_key}).first() is not None:
            return None
    now = now or utcnow()
    doorbell.queued(session)
    return {
        "kind": KIND,
        "event": f"mail.{template}",
        "ticket_id": ticket_id,
        "dedupe_key": dedupe_key,
        "next_attempt_at": now,
        "created_at": now,
        "attempts": 0,
        "failed": False,
        "payload": {
            "template": template,
            "to": recipients,
            "subject": subject,
            "context": context,
            "auto_submitted": auto_submitted,
            "attachments": attachments or [],
        },
    }


def thread_ticket(session: Session, message_id: str) -> int | None:
    """The ticket whose mail carried ``message_id`` (what a customer's In-Reply-To names)."""
    return session.scalars(
        select(OutboxMessage.ticket_id).where(
            OutboxMessage.kind == KIND, OutboxMessage.message_id == message_id
        )
    ).first()


def claim(
    session: Session, now: datetime, domain: str, limit: int = 100, receipts_per_hour: int = 0
) -> list[dict[str, Any]]:
    """Due mails, leased to this worker, with their Message-ID and thread headers fixed.

    A ticket's mails go out in the order they were queued: a due mail is left for a later
    pass while an earlier mail of its ticket is still unsent (leased to another worker, or
    waiting for a retry), so two workers draining the outbox never swap a customer's mails.
    Statements per pass, not per mail: the due rows with their tickets, one read of what
    else the pass weighs (:func:`_around`: the mail of those tickets, their comments, their
    requesters' recent tickets), and one UPDATE (the lease and the headers). On PostgreSQL the first statement leases the rows it finds (:data:`_LEASED`)
    and the last writes only the fresh rows' headers, so :func:`deliver` runs the claim
    outside a transaction (no BEGIN and COMMIT round trips); rows leased and then not taken
    (held back for order) are let go at once.

    ``receipts_per_hour`` (> 0): a ``received`` notice whose requester opened that many
    tickets in the hour before this one is not sent (marked failed, with why): an
    auto-responder that answers every notice with a new message would otherwise open a
    ticket and draw a notice per answer, for ever (see :func:`_mail_loops`).
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    due = _leased(session, now, limit) if postgres else _due(session, now, limit)
    mails, comments, opened = _around(session, due, receipts_per_hour, postgres)
    rows = _in_order(due, mails)
    looping: set[int] = set()
    if receipts_per_hour > 0 and (looping := _mail_loops(rows, receipts_per_hour, opened)):
        session.execute(_HELD_BACK, {"ids": sorted(looping), "why": _LOOP_ERROR.format(n=receipts_per_hour)})
        rows = [r for r in rows if r["id"] not in looping]
    if postgres and len(rows) < len(due):  # leased by the first statement, not taken: let go
        kept = {r["id"] for r in rows}
        if waiting := [r["id"] for r in due if r["id"] not in kept and r["id"] not in looping]:
            session.execute(_LEASE, {"until": now, "ids": waiting})
    if not rows:
        return []
    fresh = [r for r in rows if r["message_id"] is None]
    fresh_ids = {r["id"] for r in fresh}
    threads = _threads(fresh, mails, comments)
    for row in fresh:
        thread = _thread_before(threads.get(row["ticket_id"], []), row["id"])
        refs = thread[:1] + thread[1:][-(MAX_REFERENCES - 1) :] if thread else []
        row["message_id"] = email.utils.make_msgid("triage", domain=domain)
        row["payload"] = {**row["payload"], "in_reply_to": thread[-1] if thread else None, "references": refs}
        if _in_conversation(row):
            threads.setdefault(row["ticket_id"], []).append((row["created_at"], row["id"], row["message_id"]))
    # the lease and the fixed headers in one UPDATE (rows claimed before keep theirs);
    # PostgreSQL: the lease is taken, only the fresh rows' headers are left to write
    if written := [r for r in rows if not postgres or r["id"] in fresh_ids]:
        bulk.execute(
            session.connection(),
            _CLAIMED,
            [
                {"row_id": r["id"], "until": now + LEASE, "mid": r["message_id"], "body": r["payload"]}
                for r in written
            ],
        )
    return [
        {"id": r["id"], "message_id": r["message_id"], "ticket_id": r["ticket_id"], **r["payload"]}
        for r in rows
    ]


_TICKET = TicketRow.__table__
# A row is due: a mail not yet sent nor given up, whose time (first try, retry or a lapsed
# lease) has come. Both claims (SQLite's and PostgreSQL's leasing one) pick by it.
_IS_DUE = (
    _OUTBOX.c.kind == KIND,
    _OUTBOX.c.delivered_at.is_(None),
    _OUTBOX.c.failed.is_(False),
    _OUTBOX.c.next_attempt_at <= bindparam("now"),
)
# The due rows with what the claim needs of their tickets (the requester and when it was
# opened for the receipts' limit, the ticket's own Message-ID for the thread): one read,
# where a join saves two round trips per pass (the rounds' fixed cost is most of a notice's
# on PostgreSQL). Only the outbox rows are locked.
_DUE = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.ticket_id,
        _OUTBOX.c.message_id,
        _OUTBOX.c.payload,
        _OUTBOX.c.event,
        _OUTBOX.c.created_at,
        _TICKET.c.requester.label("requester"),
        _TICKET.c.created_at.label("opened_at"),
        _TICKET.c.message_id.label("ticket_message_id"),
    )
    .select_from(_OUTBOX.outerjoin(_TICKET, _TICKET.c.id == _OUTBOX.c.ticket_id))
    .where(*_IS_DUE)
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=_OUTBOX)
)
# PostgreSQL: the due rows leased by the statement that finds them, so the claim needs no
# transaction (BEGIN and COMMIT were two of a round's round trips): the first part locks the
# rows it picks (``SKIP LOCKED``: another worker's are passed over), the UPDATE sets their
# lease and commits with the statement, and they come back joined to their tickets, as
# :data:`_DUE` gives them on SQLite.
_DUE_IDS = (
    select(_OUTBOX.c.id)
    .where(*_IS_DUE)
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_DUE_CTE = _DUE_IDS.cte("due")
_LEASED_ROWS = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == _DUE_CTE.c.id)
    .values(next_attempt_at=bindparam("until"))
    .returning(
        _OUTBOX.c.id,
        _OUTBOX.c.ticket_id,
        _OUTBOX.c.message_id,
        _OUTBOX.c.payload,
        _OUTBOX.c.event,
        _OUTBOX.c.created_at,
    )
    .cte("leased")
)
_LEASED = (
    select(
        _LEASED_ROWS,
        _TICKET.c.requester.label("requester"),
        _TICKET.c.created_at.label("opened_at"),
        _TICKET.c.message_id.label("ticket_message_id"),
    )
    .select_from(_LEASED_ROWS.outerjoin(_TICKET, _TICKET.c.id == _LEASED_ROWS.c.ticket_id))
    .order_by(_LEASED_ROWS.c.id)
)


def _due(session: Session, now: datetime, limit: int) -> list[dict[str, Any]]:
    """The due rows, locked for this transaction (SQLite: the write lock; leased at the end)."""
    return [r._asdict() for r in session.execute(_DUE, {"now": now, "limit": limit})]


def _leased(session: Session, now: datetime, limit: int) -> list[dict[str, Any]]:
    """PostgreSQL: the due rows, leased already (:data:`_LEASED`), in the order queued."""
    return [r._asdict() for r in session.execute(_LEASED, {"now": now, "limit": limit, "until": now + LEASE})]


_LEASE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(next_attempt_at=bindparam("until"))
)
_CLAIMED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(next_attempt_at=bindparam("until"), message_id=bindparam("mid"), payload=bindparam("body"))
)
_HELD_BACK = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(failed=True, last_error=bindparam("why"))
)
_LOOP_ERROR = (
    "not sent: its requester opened {n} or more tickets in the hour before this one "
    "(a mail loop with an auto-responder?); TRIAGE_MAIL_RECEIPTS_PER_HOUR"
)


# What the claim weighs besides the due rows, read as one statement (a UNION ALL of up to
# three parts, told apart by ``part``; ``seq`` orders each part as its own read did):
# the round's fixed cost is its statements, each a round trip on PostgreSQL.
_MAILS, _COMMENTS, _OPENED = 0, 1, 2


def _nothing(type_) -> Any:
    return cast(null(), type_)


def _one_of(column, name: str, postgres: bool) -> Any:
    """``column IN (:name)``; on PostgreSQL ``column = ANY(:name)`` with one array: one SQL
    text whatever the number of values, which psycopg prepares after a few runs (an expanded
    IN list is a new text, parsed and planned again, for every count of values)."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def _parts(postgres: bool) -> tuple[Any, Any, Any]:
    """The three parts :func:`_around` chooses from, for SQLite or PostgreSQL."""
    # Of the batch's tickets, the customer mail the claim weighs: unsent and before the
    # batch's last (a later mail waits for it) or with a Message-ID (the thread so far).
    mails = select(
        literal(_MAILS).label("part"),
        _OUTBOX.c.ticket_id,
        _OUTBOX.c.id.label("seq"),
        _OUTBOX.c.created_at,
        _OUTBOX.c.message_id,
        _OUTBOX.c.delivered_at,
        _OUTBOX.c.failed,
        _nothing(TicketRow.requester.type).label("requester"),
    ).where(
        _OUTBOX.c.kind == KIND,
        _one_of(_OUTBOX.c.ticket_id, "tickets", postgres),
        _OUTBOX.c.event.not_in(STAFF_EVENTS),
        or_(
            _OUTBOX.c.message_id.is_not(None),
            and_(
                _OUTBOX.c.delivered_at.is_(None),
                _OUTBOX.c.failed.is_(False),
                _OUTBOX.c.id < bindparam("below"),
            ),
        ),
    )
    # The comments with a Message-ID of the fresh rows' tickets (their thread so far).
    comments = select(
        literal(_COMMENTS),
        Comment.ticket_id,
        Comment.id,
        Comment.created_at,
        Comment.message_id,
        _nothing(_OUTBOX.c.delivered_at.type),
        _nothing(_OUTBOX.c.failed.type),
        _nothing(TicketRow.requester.type),
    ).where(_one_of(Comment.ticket_id, "threads", postgres), Comment.message_id.is_not(None))
    # The tickets the batch's requesters opened in the receipts' window (:func:`_mail_loops`).
    opened = _opened_bounded() if postgres else _opened_in_window()
    return mails, comments, opened


def _opened_in_window() -> Any:
    """SQLite: every ticket the batch's requesters opened from an hour before the batch's
    first notice's ticket to its last (one index range per requester; in-process reads)."""
    return select(
        literal(_OPENED),
        TicketRow.id,
        TicketRow.id,
        TicketRow.created_at,
        _nothing(_OUTBOX.c.message_id.type),
        _nothing(_OUTBOX.c.delivered_at.type),
        _nothing(_OUTBOX.c.failed.type),
        TicketRow.requester,
    ).where(
        _one_of(TicketRow.requester, "requesters", False),
        TicketRow.created_at >= bindparam("since"),
        TicketRow.created_at <= bindparam("until"),
    )


def _opened_bounded() -> Any:
    """PostgreSQL: for each notice's ticket, at most ``per_hour`` tickets its requester opened
    in the hour before it (the hour of :func:`_mail_loops`; newest first: a range of
    ``ix_tickets_requester_created_at`` cut at ``per_hour`` rows, a LATERAL per ticket).

    The guard only asks whether ``per_hour`` such tickets exist, so the cut changes no
    decision (:func:`_mail_loops`); reading the whole hour made a busy requester's tickets
    (an auto-responder's: the case the guard is for) cost every pass pages in proportion
    to them, growing with the store (round 8, ``pgserver``)."""
    notified, earlier = _TICKET.alias("notified"), _TICKET.alias("earlier")
    # The requester's range of ``ix_tickets_requester_created_at`` from the ticket back an
    # hour, as bounds on (requester, created_at) pairs: between (R, at - 1 hour) and (R, at)
    # lie exactly R's tickets of that hour, and only that index can take such bounds. Written
    # as ``requester = R`` and a range of times, the planner may take ``ix_tickets_created_at``
    # (tickets come in time order, so it looks cheap) and walk everyone's hour for a requester
    # with few tickets in it.
    pair = tuple_(earlier.c.requester, earlier.c.created_at)
    hour_before = (notified.c.requester, notified.c.created_at - literal_column("interval '1 hour'"))
    before = (
        select(earlier.c.id, earlier.c.created_at)
        .where(
            pair >= tuple_(*hour_before),
            pair <= tuple_(notified.c.requester, notified.c.created_at),
            tuple_(earlier.c.created_at, earlier.c.id) < tuple_(notified.c.created_at, notified.c.id),
        )
        .order_by(earlier.c.requester.desc(), earlier.c.created_at.desc())
        .limit(bindparam("per_hour", type_=Integer))
        .lateral("before")
    )
    return (
        select(
            literal(_OPENED),
            before.c.id,
            before.c.id,
            before.c.created_at,
            _nothing(_OUTBOX.c.message_id.type),
            _nothing(_OUTBOX.c.delivered_at.type),
            _nothing(_OUTBOX.c.failed.type),
            notified.c.requester,
        )
        .select_from(notified.join(before, true()))
        .where(_one_of(notified.c.id, "notified", True))
    )


_AROUND: dict[tuple[bool, bool, bool, bool], Any] = {}


def _around(
    session: Session, due: list[dict[str, Any]], per_hour: int, postgres: bool
) -> tuple[list[Any], list[Any], list[Any]]:
    """(mails, comments, opened) for the due rows: the mail of their tickets (:func:`_parts`),
    the comments of the fresh rows' tickets, and (``per_hour`` > 0) the tickets opened by the
    requesters of their ``received`` notices in the hour before (:func:`_mail_loops`), read
    by one statement of the parts needed. The due rows, not only those the claim keeps: what
    is read for a row it drops is not used."""
    args: dict[str, Any] = {}
    tickets = sorted({r["ticket_id"] for r in due if r["ticket_id"] is not None})
    if tickets:
        args.update(tickets=tickets, below=max(r["id"] for r in due))
    threads = sorted({r["ticket_id"] for r in due if r["ticket_id"] is not None and r["message_id"] is None})
    if threads:
        args["threads"] = threads
    notices = [r for r in due if r["event"] == "mail.received" and r["ticket_id"] and r["requester"]]
    if per_hour > 0 and notices:
        if postgres:  # per notice's ticket, at most ``per_hour`` of the hour before it
            args.update(notified=sorted({r["ticket_id"] for r in notices}), per_hour=per_hour)
        else:
            args.update(
                requesters=sorted({r["requester"] for r in notices}),
                since=min(r["opened_at"] for r in notices) - timedelta(hours=1),
                until=max(r["opened_at"] for r in notices),
            )
    parts = (bool(tickets), bool(threads), "requesters" in args or "notified" in args)
    if not any(parts):
        return [], [], []
    key = (postgres, *parts)
    if key not in _AROUND:  # one statement per combination, so SQLAlchemy caches its SQL
        chosen = [q for q, wanted in zip(_parts(postgres), parts) if wanted]
        both = union_all(*chosen).subquery()
        _AROUND[key] = select(both).order_by(both.c.part, both.c.seq)
    found: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    for part, ticket_id, seq, at, mid, delivered_at, failed, requester in session.execute(_AROUND[key], args):
        if part == _MAILS:
            found[0].append((ticket_id, seq, at, mid, delivered_at, failed))
        elif part == _COMMENTS:
            found[1].append((ticket_id, at, mid))
        else:
            found[2].append((ticket_id, requester, at))
    return found


def _mail_loops(rows: list[dict[str, Any]], per_hour: int, opened_by: list[Any]) -> set[int]:
    """Ids of the batch's ``received`` notices whose requester opened ``per_hour`` tickets or
    more in the hour before that ticket; ``opened_by``: the tickets of those requesters around
    then, ``(id, requester, opened at)`` (:func:`_around`: one indexed read per pass, nothing
    at intake: the tickets themselves came with the due rows)."""
    notices = {r["ticket_id"]: r["id"] for r in rows if r["event"] == "mail.received" and r["ticket_id"]}
    if not notices:
        return set()
    opened = sorted(
        {(r["ticket_id"], r["requester"], r["opened_at"]) for r in rows if r["ticket_id"] in notices}
    )
    # a set: PostgreSQL's bounded read (:func:`_opened_bounded`) may give a ticket once per
    # later notice of its requester, and each must count once
    by_requester: dict[str, set[tuple[datetime, int]]] = {}
    for ticket_id, requester, at in opened_by:
        by_requester.setdefault(requester, set()).add((at, ticket_id))
    looping = set()
    for ticket_id, requester, at in opened:
        if not requester:
            continue
        earlier = sum(
            at - timedelta(hours=1) <= when and (when, other) < (at, ticket_id)
            for when, other in by_requester.get(requester, [])
        )
        if earlier >= per_hour:
            looping.add(notices[ticket_id])
    return looping


# (created_at, outbox id or None for the ticket's own mail and its comments, Message-ID)
Entry = tuple[datetime, int | None, str]


def _in_order(rows: list[dict[str, Any]], mails: list[Any]) -> list[dict[str, Any]]:
    """``rows`` less each customer mail that an earlier unsent customer mail of its ticket,
    not in ``rows``, precedes (staff notices neither wait nor hold anyone up); ``mails``:
    :func:`_around`'s."""
    tickets = {r["ticket_id"] for r in rows if _in_conversation(r)}
    if not tickets:
        return rows
    batch = {r["id"] for r in rows}
    below = max(batch)
    blocked_from: dict[int, int] = {}  # ticket -> the first unsent id of it outside the batch
    for ticket_id, mail_id, _, _, delivered_at, failed in mails:
        if delivered_at is not None or failed or mail_id >= below or mail_id in batch:
            continue
        if ticket_id in tickets and mail_id < blocked_from.get(ticket_id, below + 1):
            blocked_from[ticket_id] = mail_id
    return [
        r for r in rows if not _in_conversation(r) or r["id"] < blocked_from.get(r["ticket_id"], below + 1)
    ]


def _in_conversation(mail: dict[str, Any]) -> bool:
    """A mail of a ticket's conversation with its customers (claimed row or claimed mail)."""
    event = mail.get("event") or f"mail.{mail.get('template')}"
    return mail["ticket_id"] is not None and event not in STAFF_EVENTS


def _threads(fresh: list[dict[str, Any]], mails: list[Any], comments: list[Any]) -> dict[int, list[Entry]]:
    """The conversation so far of every ticket of ``fresh`` (claimed rows, which carry their
    ticket's own Message-ID): the ticket's, its comments', the mail sent (:func:`_around`'s)."""
    out: dict[int, list[Entry]] = {}
    for row in fresh:
        if row["ticket_id"] is not None and row["ticket_id"] not in out:
            mid = row["ticket_message_id"]
            out[row["ticket_id"]] = [(row["opened_at"], None, mid)] if mid is not None else []
    if not out:
        return out
    for ticket_id, at, mid in comments:
        if ticket_id in out:
            out[ticket_id].append((at, None, mid))
    for ticket_id, mail_id, at, mid, _, _ in mails:
        if mid is not None and ticket_id in out:
            out[ticket_id].append((at, mail_id, mid))
    return out


def _thread_before(entries: list[Entry], mail_id: int) -> list[str]:
    """Message-IDs of the conversation before mail ``mail_id``, oldest first (a stable sort
    by time: the ticket's own, then its comments', then earlier mail, as they were read)."""
    found = [e for e in entries if e[1] is None or e[1] < mail_id]
    ids = [mid for _, _, mid in sorted(found, key=lambda e: e[0]) if mid]
    return list(dict.fromkeys(ids))


Sender = Callable[[dict[str, Any]], None]

# Mails claimed per delivery pass (the service's loop passes TRIAGE_MAIL_BATCH).
BATCH = 100
# A requester's received notices an hour, at most (TRIAGE_MAIL_RECEIPTS_PER_HOUR; 0: no limit).
RECEIPTS_PER_HOUR = 10
# Outcomes are recorded as the webhooks' are (webhooks.record_outcomes): together, every
# OUTCOMES_PER_TRANSACTION mails or OUTCOMES_EVERY; a crash re-sends at most those.


def deliver(
    store,
    send: Sender,
    *,
    domain: str,
    now: Callable[[], datetime] = utcnow,
    limit: int = BATCH,
    receipts_per_hour: int = RECEIPTS_PER_HOUR,
) -> dict[str, int]:
    """One pass: claim due mails, ``send(mail)`` each outside the transaction, record outcomes.

    ``send`` raises on failure (connection refused, 4xx/5xx answer, template
    error): the row is retried with the webhooks' backoff, then marked failed. The
    later mails of that ticket in this batch are not sent: they are let go unattempted
    (counted as ``retry``) and wait for it. So are the rest of a batch still unsent
    halfway through its lease (a slow relay): nobody else may claim them before that.
    """
    with store.session() as session:
        if store.dialect == "postgresql":  # each statement of the claim commits on its own
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        claimed_at = now()
        batch = claim(session, claimed_at, domain, limit, receipts_per_hour)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    done: list[tuple[int, str | None]] = []
    waiting: list[int] = []  # not attempted: leased again to nobody
    stuck: set[int] = set()  # tickets whose earlier mail of this batch failed
    recorded = claimed_at
    for mail in batch:
        if mail["ticket_id"] in stuck or now() - claimed_at > LEASE / 2:
            waiting.append(mail["id"])
            continue
        error = None
        try:
            send(mail)
        except Exception as exc:  # noqa: BLE001 - any failure is an outcome to record
            error = f"{type(exc).__name__}: {exc}"
            log.warning("mail %s (%s): %s", mail["id"], mail.get("template"), error)
            if _in_conversation(mail):
                stuck.add(mail["ticket_id"])
        done.append((mail["id"], error))
        if len(done) >= OUTCOMES_PER_TRANSACTION or now() - recorded > OUTCOMES_EVERY:
            recorded = now()
            _record(store, done, recorded, counts)
    if done or waiting:
        _record(store, done, now(), counts, waiting)
    return counts


def _record(
    store,
    done: list[tuple[int, str | None]],
    at: datetime,
    counts: dict[str, int],
    waiting: Sequence[int] = (),
) -> None:
    """The outcomes in one transaction (``webhooks.record_outcomes``); ``waiting``: let go.
    On PostgreSQL, a round whose mails were all sent: without one (``record_all_sent``)."""
    let_go = (_LEASE, {"until": at, "ids": list(waiting)}) if waiting else None
    if not record_all_sent(store, done, at, counts, let_go):
        with store.session() as session:
            for key, value in record_outcomes(session, done, at).items():
                counts[key] += value
            if let_go is not None:
                session.execute(*let_go)
    counts["retry"] += len(waiting)
    done.clear()


def listing(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Recent mails, newest first, for the admin's outbox page."""
    rows = session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == KIND).order_by(OutboxMessage.id.desc()).limit(limit)
    )
    return [
        {
            "id": r.id,
            "template": r.payload.get("template"),
            "to": r.payload.get("to"),
            "subject": r.payload.get("subject"),
            "ticket_id": r.ticket_id,
            "message_id": r.message_id,
            "created_at": r.created_at,
            "delivered_at": r.delivered_at,
            "failed": r.failed,
            "attempts": r.attempts,
            "last_error": r.last_error,
        }
        for r in rows
    ]


def discard_unsent(session: Session, before: datetime) -> int:
    """Delete mail queued before ``before`` and never sent: for seeded demo history only,
    whose past must not be mailed to anyone. Returns how many rows went."""
    from sqlalchemy import delete

    result = session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.kind == KIND,
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.created_at < before,
        )
    )
    return result.rowcount or 0
