"""What became of each received message: the accepted copies, and the refusals kept whole.

``received_mail`` remembers every message accepted as a ticket or follow-up
(Message-ID, sender, content hash): what a later copy is compared with.
``mail_refusals`` is the dead-letter list admins can read and replay.

Intake promises that every message ends as a ticket, a follow-up or a recorded
refusal. A refusal (an auto-reply, an empty message, a message that made the
handler fail) keeps the raw bytes and the reason, so nothing is ever dropped in
silence: an admin sees the list and can replay a message once the reason is
dealt with (``triage.store.inbox.replay``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.store.tables import Base, utcnow


class ReceivedMail(Base):
    """One message accepted (ticket or follow-up): what later copies are compared with."""

    __tablename__ = "received_mail"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    sender: Mapped[str] = mapped_column(String(320), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailRefusal(Base):
    __tablename__ = "mail_refusals"
    id: Mapped[int] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]
    replay_result: Mapped[str | None] = mapped_column(String(500))


def _text(value: Any) -> str:
    """A header as a refusal can store it: PostgreSQL's text refuses NUL, and a refusal that
    cannot be written loses the message (the raw bytes, kept as they came, still hold it)."""
    return str(value or "").replace("\x00", "")


def record(
    session: Session, message: dict[str, Any], reason: str, now: datetime | None = None
) -> MailRefusal:
    """Keep the message and why it was refused; the same raw message twice is recorded once."""
    raw = bytes(message.get("raw") or b"")
    sha = message.get("raw_sha256") or ""
    found = session.scalars(
        select(MailRefusal).where(MailRefusal.raw_sha256 == sha, MailRefusal.replayed_at.is_(None))
    ).first()
    if found is not None and sha:
        return found
    row = MailRefusal(
        reason=_text(reason)[:500],
        message_id=(_text(message.get("message_id")) or None),
        sender=(_text((message.get("from") or {}).get("address")) or None),
        subject=_text(message.get("subject"))[:2000],
        raw_sha256=sha,
        raw=raw,
        received_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def listing(session: Session, *, include_replayed: bool = False, limit: int = 200) -> list[dict]:
    stmt = select(MailRefusal).order_by(MailRefusal.id.desc()).limit(limit)
    if not include_replayed:
        stmt = stmt.where(MailRefusal.replayed_at.is_(None))
    return [to_dict(r) for r in session.scalars(stmt)]


def to_dict(row: MailRefusal) -> dict[str, Any]:
    return {
        "id": row.id,
        "reason": row.reason,
        "message_id": row.message_id,
        "sender": row.sender,
        "subject": row.subject,
        "size": len(row.raw or b""),
        "received_at": row.received_at.isoformat(),
        "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
        "replay_result": row.replay_result,
    }
