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
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from triage.store import event_log
from triage.store.tables import Comment, OutboxMessage, TicketRow, utcnow
from triage.store.webhooks import LEASE, record_outcome

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


def _thread(session: Session, row: OutboxMessage) -> list[str]:
    """Message-IDs of the ticket's conversation before ``row``, oldest first."""
    if row.ticket_id is None:
        return []
    found: list[tuple[datetime, str]] = []
    ticket = session.get(TicketRow, row.ticket_id)
    if ticket is not None and ticket.message_id:
        found.append((ticket.created_at, ticket.message_id))
    found += [
        (c.created_at, c.message_id)
        for c in session.scalars(
            select(Comment).where(Comment.ticket_id == row.ticket_id, Comment.message_id.is_not(None))
        )
    ]
    found += [
        (m.created_at, m.message_id)
        for m in session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.kind == KIND,
                OutboxMessage.ticket_id == row.ticket_id,
                OutboxMessage.id < row.id,
                OutboxMessage.event.not_in(STAFF_EVENTS),
                OutboxMessage.message_id.is_not(None),
            )
        )
    ]
    ids = [mid for _, mid in sorted(found, key=lambda x: x[0]) if mid]
    return list(dict.fromkeys(ids))


def claim(session: Session, now: datetime, domain: str, limit: int = 50) -> list[dict[str, Any]]:
    """Due mails, leased to this worker, with their Message-ID and thread headers fixed."""
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.kind == KIND,
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed.is_(False),
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    out = []
    for row in session.scalars(stmt):
        row.next_attempt_at = now + LEASE
        if row.message_id is None:
            thread = _thread(session, row)
            refs = thread[:1] + thread[1:][-(MAX_REFERENCES - 1) :] if thread else []
            row.message_id = email.utils.make_msgid("triage", domain=domain)
            row.payload = {**row.payload, "in_reply_to": thread[-1] if thread else None, "references": refs}
        out.append({"id": row.id, "message_id": row.message_id, "ticket_id": row.ticket_id, **row.payload})
    return out


Sender = Callable[[dict[str, Any]], None]


def deliver(
    store, send: Sender, *, domain: str, now: Callable[[], datetime] = utcnow, limit: int = 50
) -> dict[str, int]:
    """One pass: claim due mails, ``send(mail)`` each outside the transaction, record outcomes.

    ``send`` raises on failure (connection refused, 4xx/5xx answer, template
    error): the row is retried with the webhooks' backoff, then marked failed.
    """
    with store.session() as session:
        batch = claim(session, now(), domain, limit)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    done: list[tuple[int, str | None]] = []
    for mail in batch:
        error = None
        try:
            send(mail)
        except Exception as exc:  # noqa: BLE001 - any failure is an outcome to record
            error = f"{type(exc).__name__}: {exc}"
            log.warning("mail %s (%s): %s", mail["id"], mail.get("template"), error)
        done.append((mail["id"], error))
        if len(done) >= OUTCOMES_PER_TRANSACTION:
            _record(store, done, now(), counts)
    if done:
        _record(store, done, now(), counts)
    return counts


# Outcomes recorded together, in one write transaction (a transaction per mail cost more
# than composing it). A crash before they are recorded sends those few mails again once
# their lease ends (as it did the one mail in flight): mail is delivered at least once.
OUTCOMES_PER_TRANSACTION = 10


def _record(store, done: list[tuple[int, str | None]], at: datetime, counts: dict[str, int]) -> None:
    with store.session() as session:
        list(session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_([i for i, _ in done]))))
        for mail_id, error in done:  # the rows are in the session now: no read per mail
            row = record_outcome(session, mail_id, error is None, error, at)
            counts["sent" if row.delivered_at else "failed" if row.failed else "retry"] += 1
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
