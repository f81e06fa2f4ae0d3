"""E-mail into the store: a parsed message (``triage.mail.parse_message``) → ticket or follow-up.

Threading trusts headers first (``In-Reply-To``/``References`` naming a
message we stored), then the ``[#TCK-<id>]`` subject tag. Either can be
forged, so a follow-up is only appended when the sender is the ticket's
requester or a watcher; anyone else opens a new ticket. A message seen
before (same Message-ID, e.g. a poller retry after a crash) answers what it
created the first time. Auto-replies are dropped: answering them loops.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.mail import find_reference
from triage.store import tickets
from triage.store.intake import intake
from triage.store.tables import Comment, TicketRow, utcnow

PREFIX = "TCK"
_REF = re.compile(rf"^{PREFIX}-(\d+)$", re.I)


def reference(ticket_id: int) -> str:
    """The ticket reference used in subjects: ``TCK-42`` (tag ``[#TCK-42]``)."""
    return f"{PREFIX}-{ticket_id}"


def ticket_id_of(ref: str | None) -> int | None:
    match = _REF.match(ref or "")
    return int(match.group(1)) if match else None


@dataclass
class Received:
    kind: str  # "ticket" | "followup" | "ignored"
    ticket: TicketRow | None
    created: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "created": self.created, "reason": self.reason,
                "ticket": tickets.to_dict(self.ticket) if self.ticket is not None else None}


def lookup(session: Session, message_id: str) -> str | None:
    """The reference of the ticket a stored message belongs to (its opener or a follow-up)."""
    found = session.scalars(select(TicketRow.id).where(TicketRow.message_id == message_id)).first()
    if found is None:
        found = session.scalars(select(Comment.ticket_id)
                                .where(Comment.message_id == message_id)).first()
    return reference(found) if found is not None else None


def receive(session: Session, message: dict[str, Any], *, triager=None, ruleset=None,
            encoder=None, now: datetime | None = None) -> Received:
    """Store one parsed e-mail: a new ticket, a follow-up, or nothing (auto-reply)."""
    now = now or utcnow()
    if message.get("auto_reply"):
        return Received("ignored", None, False, message.get("auto_reply_reason") or "auto-reply")
    sender = (message.get("from") or {}).get("address") or None
    mid = message.get("message_id")
    if mid and (seen := lookup(session, mid)):
        return Received("ticket", tickets.get(session, ticket_id_of(seen)), False, "seen before")
    ticket_id = ticket_id_of(find_reference(message, lookup=lambda m: lookup(session, m)))
    parent = session.get(TicketRow, ticket_id) if ticket_id else None
    if parent is not None and parent.status != "closed" and _may_write(session, parent, sender):
        return _follow_up(session, parent, message, sender, now)
    payload = {"subject": message.get("subject") or "", "body": message.get("body") or "",
               "channel": "email", "requester": sender,
               "watchers": [a["address"] for a in message.get("cc") or [] if a.get("address")],
               "extra": {"attachments": [_attachment(a) for a in message.get("attachments") or []],
                         **({"mail_warnings": message["warnings"]}
                            if message.get("warnings") else {})}}
    key = f"email:{mid}" if mid else None
    result = intake(session, payload, actor=sender or "email", triager=triager, ruleset=ruleset,
                    encoder=encoder, idempotency_key=key, now=now)
    if result.created and mid:
        result.ticket.message_id = mid
    return Received("ticket", result.ticket, result.created)


def _may_write(session: Session, ticket: TicketRow, sender: str | None) -> bool:
    if not sender:
        return False
    return sender == (ticket.requester or "").lower() or \
        sender in {w.lower() for w in tickets.watchers(session, ticket.id)}


def _follow_up(session: Session, ticket: TicketRow, message: dict[str, Any], sender: str,
               now: datetime) -> Received:
    """Append the reply; a customer answering a pending or resolved ticket puts it back to work."""
    tickets.add_comment(session, ticket, author=sender, body=message.get("body") or "",
                        channel="email", message_id=message.get("message_id"), now=now)
    tickets.customer_replied(session, ticket, actor=sender, now=now)
    return Received("followup", ticket, False)


def _attachment(a: dict[str, Any]) -> dict[str, Any]:
    """Attachment metadata only: the bytes belong in a blob store, not a ticket row."""
    return {k: a.get(k) for k in ("filename", "content_type", "size", "sha256")}
