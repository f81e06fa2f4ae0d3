"""Self-service portal visits and what happened in them: the knowledge report's raw data.

A *visit* is one customer describing one problem. It ends either as a
deflection (``solved``: an article answered it) or as a ticket
(``submitted``), or is simply abandoned. A random share of visits is the
*control* group and is shown no suggestions, so deflection can be measured
as a difference against visitors who saw nothing, not guessed from clicks.

Events are ``shown`` (an article appeared in the suggestions), ``opened``
(the customer expanded it), ``solved`` and ``submitted``. Shown and opened are
kept once per article per visit: the report counts visits, and the customer
typing on (every keystroke re-queries) must not inflate them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.store.tables import Base, utcnow

KINDS = ("shown", "opened", "solved", "submitted")
OUTCOMES = ("solved", "submitted")
ONCE_PER_ARTICLE = ("shown", "opened")


class PortalVisit(Base):
    """One customer's attempt to get help; ``control`` visits saw no suggestions."""

    __tablename__ = "portal_visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    visitor: Mapped[str | None] = mapped_column(String(320), index=True)
    control: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(20))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    solved_article: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None]


class PortalEvent(Base):
    """One thing that happened in a visit (append-only)."""

    __tablename__ = "portal_events"
    __table_args__ = (Index("ix_portal_events_article", "article_id", "kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("portal_visits.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    article_id: Mapped[str | None] = mapped_column(String(200))
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# ----------------------------------------------------------------- writing
def start_visit(
    session: Session, visitor: str | None, control: bool, now: datetime | None = None
) -> PortalVisit:
    visit = PortalVisit(visitor=visitor, control=bool(control), started_at=now or utcnow())
    session.add(visit)
    session.flush()
    return visit


def get_visit(session: Session, visit_id: int | None) -> PortalVisit | None:
    return session.get(PortalVisit, int(visit_id)) if visit_id else None


def record(
    session: Session,
    visit: PortalVisit,
    kind: str,
    article_id: str | None = None,
    *,
    rank: int | None = None,
    score: float | None = None,
    now: datetime | None = None,
) -> bool:
    """Append an event; False when it adds nothing (a repeat of shown/opened, or unknown kind)."""
    if kind not in KINDS:
        raise ValueError(f"portal event kind: expected one of {KINDS}, got {kind!r}")
    if kind in ONCE_PER_ARTICLE and article_id is not None:
        seen = session.scalars(
            select(PortalEvent.id).where(
                PortalEvent.visit_id == visit.id,
                PortalEvent.kind == kind,
                PortalEvent.article_id == article_id,
            )
        ).first()
        if seen is not None:
            return False
    session.add(
        PortalEvent(
            visit_id=visit.id, kind=kind, article_id=article_id, rank=rank, score=score, at=now or utcnow()
        )
    )
    session.flush()
    return True


def finish(
    session: Session,
    visit: PortalVisit,
    outcome: str,
    *,
    ticket_id: int | None = None,
    article_id: str | None = None,
    now: datetime | None = None,
) -> bool:
    """End the visit as ``solved`` or ``submitted`` (once: a second ending is ignored)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"portal outcome: expected one of {OUTCOMES}, got {outcome!r}")
    if visit.outcome is not None:
        return False
    now = now or utcnow()
    visit.outcome, visit.ticket_id, visit.ended_at = outcome, ticket_id, now
    visit.solved_article = article_id if outcome == "solved" else None
    record(session, visit, outcome, article_id, now=now)
    return True


# ----------------------------------------------------------------- reading
def articles_of(session: Session, visit_id: int) -> dict[str, list[str]]:
    """Article ids shown and opened in a visit, in the order they happened."""
    stmt = (
        select(PortalEvent.kind, PortalEvent.article_id)
        .where(
            PortalEvent.visit_id == visit_id,
            PortalEvent.kind.in_(ONCE_PER_ARTICLE),
            PortalEvent.article_id.is_not(None),
        )
        .order_by(PortalEvent.id)
    )
    out: dict[str, list[str]] = {"shown": [], "opened": []}
    for kind, article in session.execute(stmt):
        out[kind].append(article)
    return out


def events_of(session: Session, visit_id: int) -> list[dict[str, Any]]:
    stmt = select(PortalEvent).where(PortalEvent.visit_id == visit_id).order_by(PortalEvent.id)
    return [
        {"kind": e.kind, "article_id": e.article_id, "rank": e.rank, "score": e.score, "at": e.at.isoformat()}
        for e in session.scalars(stmt)
    ]


def article_counts(session: Session, since: datetime | None = None) -> list[dict[str, Any]]:
    """Per article: visits where it was shown, opened, marked solving, followed by a ticket."""
    stmt = (
        select(PortalEvent.article_id, PortalEvent.kind, func.count(func.distinct(PortalEvent.visit_id)))
        .where(PortalEvent.article_id.is_not(None))
        .group_by(PortalEvent.article_id, PortalEvent.kind)
    )
    if since is not None:
        stmt = stmt.where(PortalEvent.at >= since)
    rows: dict[str, dict[str, Any]] = {}
    for article, kind, n in session.execute(stmt):
        if kind in ("shown", "opened", "solved"):
            _count_row(rows, article)[kind] = int(n)
    anyway = (
        select(PortalEvent.article_id, func.count(func.distinct(PortalEvent.visit_id)))
        .join(PortalVisit, PortalVisit.id == PortalEvent.visit_id)
        .where(PortalEvent.kind == "shown", PortalVisit.outcome == "submitted")
        .group_by(PortalEvent.article_id)
    )
    if since is not None:
        anyway = anyway.where(PortalEvent.at >= since)
    for article, n in session.execute(anyway):
        _count_row(rows, article)["ticket_anyway"] = int(n)
    return sorted(rows.values(), key=lambda r: (-r["shown"], r["article_id"]))


def _count_row(rows: dict[str, dict[str, Any]], article: str) -> dict[str, Any]:
    return rows.setdefault(
        article, {"article_id": article, "shown": 0, "opened": 0, "solved": 0, "ticket_anyway": 0}
    )


def outcome_counts(session: Session, since: datetime | None = None) -> dict[str, dict[str, int]]:
    """Visits per group (``control`` / ``treatment``) and outcome, for the deflection estimate."""
    stmt = select(PortalVisit.control, PortalVisit.outcome, func.count()).group_by(
        PortalVisit.control, PortalVisit.outcome
    )
    if since is not None:
        stmt = stmt.where(PortalVisit.started_at >= since)
    out = {g: {"visits": 0, "solved": 0, "submitted": 0, "abandoned": 0} for g in ("control", "treatment")}
    for control, outcome, n in session.execute(stmt):
        group = out["control" if control else "treatment"]
        group["visits"] += int(n)
        group[outcome or "abandoned"] += int(n)
    return out
