"""E-mail into the store: a parsed message (``triage.mail.parse_message``) → exactly one outcome.

Every message ends as one of: a new ticket, a follow-up on a ticket, a
duplicate of a message already stored, or a refusal kept with its raw bytes
and reason (``triage.store.mail_log``: auto-replies, empty messages, and
messages whose handling failed). Nothing is dropped in silence.

De-duplication: a message is "the same" when its Message-ID, sender and
content hash (subject, body, attachments; not the transport headers) all
match one stored before; without a Message-ID, the raw bytes' hash decides. A
Message-ID reused by another sender or with other content is a new message:
it is stored, with a warning, and does not thread on the strength of that ID.

Threading trusts headers first (``In-Reply-To``/``References`` naming a
message we stored or sent), then the ``[#TCK-<id>]`` subject tag. Either can
be forged, so a follow-up is only appended when the sender is the ticket's
requester or a watcher; anyone else opens a new ticket.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from triage.mail import find_reference, parse_message
from triage.store import attachments as files_store
from triage.store import mail_log as refusals
from triage.store import event_log, outbound, tickets
from triage.store.mail_log import ReceivedMail
from triage.store.intake import Prepared, intake, prepare, write
from triage.store.tables import Comment, TicketRow, utcnow
from triage.ticket import PREFIX, reference, ticket_id_of  # noqa: F401 - used and re-exported

OUTCOMES = ("created", "threaded", "duplicate", "refused")
log = logging.getLogger(__name__)


@dataclass
class Received:
    outcome: str  # one of OUTCOMES: created | threaded | duplicate | refused
    ticket: TicketRow | None
    reason: str | None = None
    refusal_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    comment_id: int | None = None

    @property
    def created(self) -> bool:
        return self.outcome == "created"

    @property
    def kind(self) -> str:
        """The older name of the outcome: ticket | followup | refused."""
        return {"created": "ticket", "duplicate": "ticket", "threaded": "followup"}.get(
            self.outcome, self.outcome
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "kind": self.kind,
            "created": self.created,
            "reason": self.reason,
            "refusal_id": self.refusal_id,
            "warnings": self.warnings,
            "ticket": tickets.to_dict(self.ticket) if self.ticket is not None else None,
        }


def lookup(session: Session, message_id: str) -> str | None:
    """The reference of the ticket a message belongs to: one we stored, or one we sent."""
    found = session.scalars(select(TicketRow.id).where(TicketRow.message_id == message_id)).first()
    if found is None:
        found = session.scalars(select(Comment.ticket_id).where(Comment.message_id == message_id)).first()
    if found is None:
        found = outbound.thread_ticket(session, message_id)
    if found is None:
        found = session.scalars(
            select(ReceivedMail.ticket_id).where(ReceivedMail.message_id == message_id)
        ).first()
    return reference(found) if found is not None else None


def _sender(message: dict[str, Any]) -> str:
    return ((message.get("from") or {}).get("address") or "").lower()


def _seen(session: Session, message: dict[str, Any]) -> tuple[ReceivedMail | None, bool]:
    """(the stored copy of this message or None, whether its Message-ID was used before)."""
    return _seen_in(_known(session, [message]), message)


def _known(session: Session, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What the store holds under the messages' Message-IDs (and raw hashes, for those
    without one): three or four statements for any number of messages."""
    mids = sorted({str(m["message_id"]) for m in messages if m.get("message_id")})
    raws = sorted({str(m.get("raw_sha256")) for m in messages if not m.get("message_id")})
    known: dict[str, Any] = {"received": {}, "raw": {}, "tickets": {}, "comments": set()}
    if mids:
        for row in session.scalars(
            select(ReceivedMail).where(ReceivedMail.message_id.in_(mids)).order_by(ReceivedMail.id)
        ):
            known["received"].setdefault(row.message_id, []).append(row)
        for ticket_id, mid, requester in session.execute(
            select(TicketRow.id, TicketRow.message_id, TicketRow.requester)
            .where(TicketRow.message_id.in_(mids))
            .order_by(TicketRow.id)
        ):
            known["tickets"].setdefault(mid, (ticket_id, requester))
        known["comments"] = set(
            session.scalars(select(Comment.message_id).where(Comment.message_id.in_(mids)).distinct())
        )
    if raws:
        for row in session.scalars(
            select(ReceivedMail)
            .where(ReceivedMail.message_id.is_(None), ReceivedMail.raw_sha256.in_(raws))
            .order_by(ReceivedMail.id)
        ):
            known["raw"].setdefault(row.raw_sha256, row)
    return known


def _seen_in(known: dict[str, Any], message: dict[str, Any]) -> tuple[ReceivedMail | None, bool]:
    """:func:`_seen` from :func:`_known`'s answer."""
    mid, sender = message.get("message_id"), _sender(message)
    if not mid:
        return known["raw"].get(message.get("raw_sha256")), False
    rows = known["received"].get(mid, [])
    for row in rows:
        if row.sender == sender and row.content_hash == message.get("content_hash"):
            return row, True
    legacy = known["tickets"].get(mid)
    if not rows and legacy is not None and (legacy[1] or "").lower() == sender:
        return ReceivedMail(ticket_id=legacy[0], outcome="created"), True  # stored before dedup
    return None, bool(rows) or legacy is not None or mid in known["comments"]


def receive(
    session: Session,
    message: dict[str, Any],
    *,
    triager=None,
    ruleset=None,
    encoder=None,
    now: datetime | None = None,
    files: files_store.Files | None = None,
    force: bool = False,
    planned: _Planned | None = None,
) -> Received:
    """Store one parsed e-mail as exactly one outcome (see the module docstring).

    ``force`` (an admin's replay) accepts a message refused as an auto-reply or as empty.
    ``files``: where attachment bytes go; without it only their metadata is kept.
    ``planned``: :func:`receive_many`'s new ticket, prepared and maybe already inserted.
    """
    now = now or utcnow()
    if not force and (reason := _refusal_reason(message)):
        _unplanned(planned)
        row = refusals.record(session, message, reason, now)
        return Received("refused", None, reason, refusal_id=row.id)
    stored, reused = _seen(session, message) if planned is None else _seen_in(planned.known, message)
    if stored is not None:
        _unplanned(planned)
        return Received("duplicate", tickets.get(session, stored.ticket_id), "seen before")
    warnings = _warnings(message, reused)
    sender = _sender(message) or None
    ticket_id = None if reused else ticket_id_of(find_reference(message, lookup=lambda m: lookup(session, m)))
    if reused:  # do not thread on a reused ID; the subject tag still may
        ticket_id = ticket_id_of(find_reference(message))
    parent = session.get(TicketRow, ticket_id) if ticket_id else None
    if parent is not None and parent.status != "closed" and _may_write(session, parent, sender):
        _unplanned(planned)
        result = _follow_up(session, parent, message, sender, now, reused)
    elif parent is not None and _may_write(session, parent, sender):
        _unplanned(planned)
        result = _after_closure(
            session,
            parent,
            message,
            sender,
            now,
            reused,
            warnings,
            triager=triager,
            ruleset=ruleset,
            encoder=encoder,
        )
    elif planned is not None and planned.item.payload == _ticket_payload(message, sender, warnings):
        result = _planned_ticket(session, planned, message, sender, reused, ruleset)
    else:
        _unplanned(planned)
        result = _new_ticket(
            session, message, sender, now, reused, warnings, triager=triager, ruleset=ruleset, encoder=encoder
        )
    result.warnings = warnings
    _keep_files(session, files, result, message, sender, now)
    _remember(session, message, result, reused, now, flush=planned is None)
    return result


def _refusal_reason(message: dict[str, Any]) -> str | None:
    if message.get("auto_reply"):
        return f"auto-reply: {message.get('auto_reply_reason') or 'machine-sent'}"
    if message.get("unreadable"):
        return "unreadable message (" + "; ".join(message.get("defects") or [])[:200] + ")"
    if message.get("empty"):
        defects = message.get("defects") or []
        return "empty message" + (f" ({'; '.join(defects)[:200]})" if defects else "")
    return None


def _new_ticket(
    session: Session,
    message: dict[str, Any],
    sender: str | None,
    now: datetime,
    reused: bool,
    warnings: list[str],
    **serving: Any,
) -> Received:
    payload = _ticket_payload(message, sender, warnings)
    key = _intake_key(message, sender)
    result = intake(session, payload, actor=sender or "email", idempotency_key=key, now=now, **serving)
    return _opened(result, message, reused)


def _after_closure(
    session: Session,
    closed: TicketRow,
    message: dict[str, Any],
    sender: str,
    now: datetime,
    reused: bool,
    warnings: list[str],
    **serving: Any,
) -> Received:
    """The customer answered a closed ticket: a new ticket, a follow-up of the closed one
    (closed stays closed: its history and rating are final). It keeps the conversation's
    subject (not "Re: [#TCK-n] Resolved: ..."), names the closed ticket in ``extra``
    (``follow_up_of``; its received notice says so) and the closed one records the follow-up."""
    payload = _ticket_payload(message, sender, warnings)
    payload["subject"] = closed.subject or payload["subject"]
    payload["extra"]["follow_up_of"] = closed.id
    key = _intake_key(message, sender)
    result = intake(session, payload, actor=sender, idempotency_key=key, now=now, **serving)
    if result.created:
        tickets.record(session, closed, "follow_up", None, reference(result.ticket.id), sender, now)
    return _opened(result, message, reused)


def _opened(result, message: dict[str, Any], reused: bool) -> Received:
    """A message's intake outcome; a new ticket keeps the Message-ID that opened it (not a
    reused one: that ID already names another message)."""
    mid = message.get("message_id")
    if result.created and mid and not reused:
        result.ticket.message_id = mid
    return Received("created" if result.created else "duplicate", result.ticket)


def _warnings(message: dict[str, Any], reused: bool) -> list[str]:
    warnings = list(message.get("warnings") or []) + [
        f"MIME defect: {d}" for d in message.get("defects") or []
    ]
    if reused:
        warnings.append(
            f"Message-ID {message.get('message_id')} was used before by another "
            "sender or with other content: stored as a new message"
        )
    return warnings


def _ticket_payload(message: dict[str, Any], sender: str | None, warnings: list[str]) -> dict[str, Any]:
    meta = [_attachment(a) for a in message.get("attachments") or []]
    return {
        "subject": message.get("subject") or "(no subject)",
        "body": message.get("body") or "",
        "channel": "email",
        "requester": sender,
        "watchers": [a["address"] for a in message.get("cc") or [] if a.get("address")],
        "extra": {"attachments": meta, **({"mail_warnings": warnings} if warnings else {})},
    }


def _intake_key(message: dict[str, Any], sender: str | None) -> str:
    """The idempotency key of the ticket a message opens: a replay answers the same ticket."""
    mid = message.get("message_id")
    identity = (
        f"{mid}\n{sender}\n{message.get('content_hash')}" if mid else f"raw\n{message.get('raw_sha256')}"
    )
    return "email:" + hashlib.sha256(identity.encode()).hexdigest()


def _may_write(session: Session, ticket: TicketRow, sender: str | None) -> bool:
    if not sender:
        return False
    return sender == (ticket.requester or "").lower() or sender in {
        w.lower() for w in tickets.watchers(session, ticket.id)
    }


def _follow_up(
    session: Session, ticket: TicketRow, message: dict[str, Any], sender: str, now: datetime, reused: bool
) -> Received:
    """Append the reply; a customer answering a pending or resolved ticket puts it back to work."""
    comment, _ = tickets.add_comment(
        session,
        ticket,
        author=sender,
        body=message.get("body") or "",
        channel="email",
        message_id=None if reused else message.get("message_id"),
        now=now,
    )
    tickets.customer_replied(session, ticket, actor=sender, now=now)
    return Received("threaded", ticket, comment_id=comment.id)


def _keep_files(
    session: Session,
    files: files_store.Files | None,
    result: Received,
    message: dict[str, Any],
    sender: str | None,
    now: datetime,
) -> None:
    """Attachment bytes into the file store; one over a limit is kept in the refusals instead."""
    if files is None or result.ticket is None:
        return
    with event_log.unbatched(session):  # a refused file's savepoint must not outlive buffered rows
        _keep_each(session, files, result, message, sender, now)


def _keep_each(
    session: Session,
    files: files_store.Files,
    result: Received,
    message: dict[str, Any],
    sender: str | None,
    now: datetime,
) -> None:
    assert result.ticket is not None
    comment_id = result.comment_id
    for item in message.get("attachments") or []:
        try:
            with session.begin_nested():
                _, warning = files_store.add(
                    session,
                    files,
                    result.ticket,
                    filename=item.get("filename"),
                    content_type=item.get("content_type"),
                    data=item.get("data") or b"",
                    source="email",
                    uploaded_by=sender or "email",
                    comment_id=comment_id,
                    strict=False,
                    now=now,
                )
        except files_store.AttachmentRefused as exc:
            row = refusals.record(session, message, f"attachment not stored: {exc.message}", now)
            warning = f"{exc.message} (the whole message is kept as refusal {row.id})"
        if warning:
            result.warnings.append(warning)
            tickets.record(
                session, result.ticket, "mail_warning", None, warning[:500], sender or "email", now
            )


def _remember(
    session: Session,
    message: dict[str, Any],
    result: Received,
    reused: bool,
    now: datetime,
    flush: bool = True,
) -> None:
    """Keep what a later copy of the message is compared with. ``flush`` False (a planned
    message: no later message of its poll shares its IDs, see ``_plans``): the row is written
    when the group's batch ends, the group's rows as one statement (a Core INSERT: as ORM
    objects SQLite inserted them one statement each, to read each id back)."""
    if result.ticket is None or result.outcome == "duplicate":
        return
    row = {
        "message_id": message.get("message_id"),
        "sender": _sender(message),
        "content_hash": message.get("content_hash") or "",
        "raw_sha256": message.get("raw_sha256") or "",
        "outcome": result.outcome,
        "ticket_id": result.ticket.id,
        "comment_id": result.comment_id,
        "received_at": now,
    }
    if flush:
        session.add(ReceivedMail(**row))
        session.flush()
    else:
        event_log.write_later(session, _RECEIVED, [row])


_RECEIVED = insert(ReceivedMail.__table__)


def _attachment(a: dict[str, Any]) -> dict[str, Any]:
    return {k: a.get(k) for k in ("filename", "content_type", "size", "sha256")}


# ----------------------------------------------------------------- whole messages
def receive_raw(store, raw: bytes | dict[str, Any], **kwargs: Any) -> Received:
    """Parse and receive in one transaction; if that fails, record a refusal in another.

    The caller acks the message only after this returns, so the only way to
    lose it would be for both transactions to fail, and then it is not acked
    and is read again on the next poll.
    """
    message = _parsed(raw)
    try:
        with store.session() as session:
            return receive(session, message, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a failure is an outcome to record, not to lose
        return _failed(store, message, exc)


def receive_many(store, raws: list[bytes | dict[str, Any]], **kwargs: Any) -> list[Received]:
    """:func:`receive_raw` of a poll's messages, committed together (``triage.store.group``).

    Each message is received in the group's shared transactions (up to ``MAX_GROUP`` a
    commit; a message that fails is rerun alone and, failing again, kept as a refusal in a
    transaction of its own). Every entry is returned only after the commit that holds it,
    so the poller may ack a message as soon as it has its entry.

    A message that plainly opens a ticket (see :func:`_plan`) is prepared first, outside
    any write transaction (the model, the encoder, the duplicate search: as HTTP intake
    does), and its ticket is inserted with the group's others by one statement per table
    (``tickets.create_many``). Its outcome is still decided in the transaction, as for any
    message: should that come out otherwise (another process stored it meanwhile), the
    group is rolled back and the message received again alone, unplanned.
    """
    messages = [_parsed(raw) for raw in raws]
    plans = _plans(store, messages, kwargs)
    jobs = store.committer.run_all([_MailJob(m, kwargs, plan) for m, plan in zip(messages, plans)])
    return [
        job.result if job.error is None else _failed(store, message, job.error)
        for message, job in zip(messages, jobs)
    ]


@dataclass
class _Planned:
    """A new ticket prepared before the write transaction, and what ``create_many`` made of it."""

    item: Prepared
    made: tuple[TicketRow, bool] | Exception | None = None
    known: dict[str, Any] = field(default_factory=dict)  # _known in the write transaction


class _Replan(Exception):
    """A planned message the transaction decided otherwise (a follow-up, a duplicate, a
    refusal) after its ticket was inserted: its group is rolled back and it runs alone."""


class _MailJob:
    """One message's job for the group committer; :meth:`create_group` inserts the tickets
    of the group's planned messages together before any job runs."""

    __slots__ = ("message", "kwargs", "planned")

    def __init__(self, message: dict[str, Any], kwargs: dict[str, Any], item: Prepared | None) -> None:
        self.message, self.kwargs = message, kwargs
        self.planned = _Planned(item) if item is not None else None

    @staticmethod
    def create_group(session: Session, jobs: list[_MailJob]) -> None:
        ready = [job.planned for job in jobs if job.planned is not None]
        made = tickets.create_many(
            session,
            [
                (p.item.payload, p.item.payload["requester"] or "email", p.item.idempotency_key, p.item.now)
                for p in ready
            ],
        )
        known = _known(session, [job.message for job in jobs if job.planned is not None])
        for planned, entry in zip(ready, made):
            planned.made, planned.known = entry, known

    def __call__(self, session: Session) -> Received:
        try:
            return receive(session, self.message, planned=self.planned, **self.kwargs)
        except _Replan:
            self.planned = None  # rerun alone: decided and written in the transaction, as receive_raw
            raise


def _plans(store, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> list[Prepared | None]:
    """Each message's new ticket prepared (read-only), or None: it goes the whole way in the
    write transaction, as it always did."""
    if kwargs.get("force") or not messages:
        return [None] * len(messages)
    earlier: set[str] = set()  # what the batch's earlier messages may have stored
    out: list[Prepared | None] = []
    with store.session(readonly=True) as session:
        known = _known(session, messages)
        for message in messages:
            ids = _identities(message)
            try:
                out.append(None if ids & earlier else _plan(session, known, message, kwargs))
            except Exception:  # noqa: BLE001 - decided again in the transaction, failing there alone
                log.debug("mail %s: not planned", message.get("message_id"), exc_info=True)
                out.append(None)
            earlier |= ids
    return out


def _identities(message: dict[str, Any]) -> set[str]:
    """The Message-IDs a message carries or names, or its raw hash when it has no ID."""
    ids = {message.get("message_id"), message.get("in_reply_to"), *(message.get("references") or [])}
    ids.discard(None)
    return {str(i) for i in ids} or {f"raw:{message.get('raw_sha256')}"}


def _plan(
    session: Session, known: dict[str, Any], message: dict[str, Any], kwargs: dict[str, Any]
) -> Prepared | None:
    """The prepared ticket of a message that opens one on its face: not a refusal, not seen
    before, naming no ticket (by header or subject tag); else None."""
    if _refusal_reason(message):
        return None
    stored, reused = _seen_in(known, message)
    if stored is not None:
        return None
    by_header = None if reused else (lambda m: lookup(session, m))
    if find_reference(message, lookup=by_header) is not None:
        return None
    sender = _sender(message) or None
    payload = _ticket_payload(message, sender, _warnings(message, reused))
    return prepare(
        session,
        payload,
        triager=kwargs.get("triager"),
        encoder=kwargs.get("encoder"),
        idempotency_key=_intake_key(message, sender),
        now=kwargs.get("now") or utcnow(),
    )


def _planned_ticket(
    session: Session, planned: _Planned, message: dict[str, Any], sender: str | None, reused: bool, ruleset
) -> Received:
    """The rest of a planned ticket's intake (its row is in: ``create_many``)."""
    made, planned.made = planned.made, None
    if isinstance(made, Exception):
        raise made  # this message alone fails (its group reruns without it)
    result = write(session, planned.item, actor=sender or "email", ruleset=ruleset, made=made)
    return _opened(result, message, reused)


def _unplanned(planned: _Planned | None) -> None:
    """The message was planned as a new ticket but is not one: undo, unless nothing was made."""
    if planned is None or planned.made is None:
        return
    if isinstance(planned.made, tuple) and not planned.made[1]:
        planned.made = None  # its key was held already: create_many wrote nothing for it
        return
    raise _Replan("planned as a new ticket, decided otherwise in the transaction")


def _parsed(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {**parse_message(raw), "raw": raw}


def _failed(store, message: dict[str, Any], exc: BaseException) -> Received:
    """A message whose handling failed, kept as a refusal (its own transaction)."""
    log.error("mail %s: handling failed, kept as a refusal", message.get("message_id"), exc_info=exc)
    reason = f"handling failed: {type(exc).__name__}: {exc}"[:500]
    with store.session() as session:
        row = refusals.record(session, message, reason)
        return Received("refused", None, reason, refusal_id=row.id)


def replay(store, refusal_id: int, **kwargs: Any) -> Received:
    """An admin's second try of a refused message (accepted even if auto-reply or empty)."""
    with store.session() as session:
        row = session.get(refusals.MailRefusal, refusal_id)
        if row is None or row.replayed_at is not None:
            from triage.errors import NotFound

            raise NotFound(f"no refused message {refusal_id} waiting for a replay")
        raw = bytes(row.raw)
    message = {**parse_message(raw), "raw": raw}
    with store.session() as session:
        result = receive(session, message, force=True, **kwargs)
        row = session.get(refusals.MailRefusal, refusal_id)
        row.replayed_at = utcnow()
        row.replay_result = f"{result.outcome}" + (
            f" ticket {result.ticket.id}" if result.ticket is not None else ""
        )
    return result
