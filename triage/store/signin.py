"""Sign-in state kept on the server: one-time sign-in links and page sessions.

A sign-in link names a random nonce; only its sha256 is stored, with the
address it was sent to, when it expires and whether it was used. Using it is a
conditional UPDATE (``WHERE used_at IS NULL AND expires_at > now``), so a link
works once even when two workers receive it at the same moment.

A page session is a random id in the (signed) cookie and a row here; signing
out marks the row revoked, so a captured cookie stops working at once, in
every worker.

Requests for links are counted here too (per address and per client, in a
sliding window) because the rows are already here and every worker sees them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Index, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.errors import TriageError
from triage.store.tables import Base, utcnow

LINK_TTL = timedelta(minutes=15)


class SigninLink(Base):
    __tablename__ = "signin_links"
    __table_args__ = (
        Index("ix_signin_links_address", "address", "created_at"),
        Index("ix_signin_links_client", "client", "created_at"),
    )
    nonce_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    client: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PageSession(Base):
    __tablename__ = "page_sessions"
    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class TooManyRequests(TriageError):
    """More sign-in links asked for than the limit allows; ``retry_after`` in seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True)
class LinkLimits:
    per_address: int = 5
    per_client: int = 20
    window: timedelta = timedelta(minutes=15)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def issue_link(
    session: Session,
    address: str,
    client: str,
    *,
    now: datetime | None = None,
    limits: LinkLimits = LinkLimits(),
    ttl: timedelta = LINK_TTL,
) -> str:
    """A fresh nonce for ``address``, or :class:`TooManyRequests` over either limit."""
    now = now or utcnow()
    since = now - limits.window
    for column, value, limit, what in (
        (SigninLink.address, address, limits.per_address, "this address"),
        (SigninLink.client, client, limits.per_client, "this client"),
    ):
        count = session.scalar(
            select(func.count()).select_from(SigninLink).where(column == value, SigninLink.created_at > since)
        )
        if count >= limit:
            raise TooManyRequests(
                f"too many sign-in links for {what}: at most {limit} per "
                f"{int(limits.window.total_seconds() // 60)} minutes",
                int(limits.window.total_seconds()),
            )
    nonce = secrets.token_urlsafe(24)
    session.add(
        SigninLink(
            nonce_sha256=_sha(nonce),
            address=address,
            client=client[:100],
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()
    return nonce


def use_link(session: Session, nonce: str, address: str, now: datetime | None = None) -> bool:
    """True the first time a valid, unexpired link for ``address`` is used; False ever after."""
    now = now or utcnow()
    result = session.execute(
        update(SigninLink)
        .where(
            SigninLink.nonce_sha256 == _sha(nonce),
            SigninLink.address == address,
            SigninLink.used_at.is_(None),
            SigninLink.expires_at > now,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


def open_session(session: Session, role: str, user_id: str, now: datetime | None = None) -> str:
    """A new page session; the returned id goes into the cookie (only its hash is stored)."""
    sid = secrets.token_urlsafe(32)
    session.add(
        PageSession(id_sha256=_sha(sid), role=role, user_id=user_id[:320], created_at=now or utcnow())
    )
    session.flush()
    return sid


def session_alive(session: Session, sid: str | None) -> bool:
    if not sid:
        return False
    row = session.get(PageSession, _sha(sid))
    return row is not None and row.revoked_at is None


def revoke(session: Session, sid: str | None, now: datetime | None = None) -> None:
    if sid:
        session.execute(
            update(PageSession)
            .where(PageSession.id_sha256 == _sha(sid), PageSession.revoked_at.is_(None))
            .values(revoked_at=now or utcnow())
        )
