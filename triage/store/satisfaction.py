"""Customer satisfaction: one rating (1-5, optional comment) per resolved ticket.

A survey is opened when a ticket is resolved (the resolution mail carries its
link); its token is random and unguessable, so the link alone lets the customer
answer in one click without signing in. The team, agent and category are copied
at resolution so the report does not move when the ticket is later re-routed.
The first answer counts: one answer per ticket, enforced by the row itself.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.store.tables import Base, TicketRow, utcnow

SCALE = (1, 2, 3, 4, 5)
SATISFIED = 4  # ratings of 4 and 5 count as satisfied (the usual CSAT definition)
# A one-click answer may be corrected this long after it was given: mail scanners that
# follow every link record a rating before the customer's own click arrives.
CHANGE_WINDOW = timedelta(hours=1)


class Survey(Base):
    __tablename__ = "satisfaction"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    team: Mapped[str | None] = mapped_column(String(100))
    agent: Mapped[str | None] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(100))
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]


def request(session: Session, ticket: TicketRow, now: datetime | None = None) -> Survey:
    """The ticket's survey, opened at its (first) resolution; a reopen keeps the same one."""
    found = session.scalars(select(Survey).where(Survey.ticket_id == ticket.id)).first()
    if found is not None:
        return found
    survey = Survey(
        ticket_id=ticket.id,
        token=secrets.token_urlsafe(32),
        team=ticket.team,
        agent=ticket.assignee,
        category=ticket.category,
        requested_at=now or utcnow(),
    )
    session.add(survey)
    session.flush()
    return survey


def by_token(session: Session, token: str) -> Survey | None:
    if not token or len(token) > 64:
        return None
    return session.scalars(select(Survey).where(Survey.token == token)).first()


def of_ticket(session: Session, ticket_id: int) -> Survey | None:
    return session.scalars(select(Survey).where(Survey.ticket_id == ticket_id)).first()


def answer(
    session: Session, survey: Survey, rating: int, comment: str | None = None, now: datetime | None = None
) -> bool:
    """Record the rating; False when this ticket was already rated (the first answer stands).

    A conditional UPDATE (``WHERE rating IS NULL``), so two clicks racing in two
    workers still leave exactly one answer.
    """
    if rating not in SCALE:
        raise ValueError(f"expected a rating in {SCALE}, got {rating!r}")
    result = session.execute(
        update(Survey)
        .where(Survey.id == survey.id, Survey.rating.is_(None))
        .values(rating=rating, comment=(comment or None) and comment[:2000], answered_at=now or utcnow())
    )
    session.refresh(survey)
    return result.rowcount == 1


def change(session: Session, survey: Survey, rating: int, now: datetime | None = None) -> bool:
    """Correct a rating given less than ``CHANGE_WINDOW`` ago; False when it is too late."""
    if rating not in SCALE:
        raise ValueError(f"expected a rating in {SCALE}, got {rating!r}")
    now = now or utcnow()
    result = session.execute(
        update(Survey)
        .where(Survey.id == survey.id, Survey.rating.is_not(None), Survey.answered_at > now - CHANGE_WINDOW)
        .values(rating=rating)
    )
    session.refresh(survey)
    return result.rowcount == 1


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion (good for small n, never outside 0..1)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def report(session: Session, by: str) -> list[dict[str, Any]]:
    """Per team, agent or category: answers n, mean rating, share satisfied with its interval."""
    if by not in ("team", "agent", "category"):
        raise ValueError(f"expected team, agent or category, got {by!r}")
    rows = session.execute(select(getattr(Survey, by), Survey.rating).where(Survey.rating.is_not(None))).all()
    groups: dict[str, list[int]] = {}
    for key, rating in rows:
        groups.setdefault(key or "(none)", []).append(int(rating))
    asked = _counts(session, by)
    out = []
    for key, ratings in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        n, happy = len(ratings), sum(r >= SATISFIED for r in ratings)
        low, high = wilson(happy, n)
        out.append(
            {
                by: key,
                "n": n,
                "asked": asked.get(key, n),
                "mean": sum(ratings) / n,
                "satisfied": happy / n,
                "satisfied_low": low,
                "satisfied_high": high,
            }
        )
    return out


def _counts(session: Session, by: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (key,) in session.execute(select(getattr(Survey, by))):
        counts[key or "(none)"] = counts.get(key or "(none)", 0) + 1
    return counts
