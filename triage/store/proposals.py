"""Major-incident proposals: the burst detector's suggestion, stored until an agent decides.

Intake's similarity search may find a burst (many similar tickets in a short
window) and propose its seed ticket as the parent of a major incident. The
proposal is kept as a ``links`` row of kind ``incident_proposal`` on the parent
(members, label, size, cohesion in ``data``), one open proposal per parent,
growing as more members arrive. Agents list the open ones and accept (every
member is linked to the parent, which is tagged ``major-incident``) or decline;
either way the row is closed (``undone_at``) with the decision and who made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.errors import NotFound, TransitionError
from triage.store import merge, tickets
from triage.store.tables import Link, utcnow

KIND = "incident_proposal"


def _open_for(session: Session, parent_id: int) -> Link | None:
    return session.scalars(
        select(Link).where(Link.kind == KIND, Link.ticket_id == parent_id, Link.undone_at.is_(None))
    ).first()


def record(session: Session, incident: dict[str, Any] | None, *, now: datetime | None = None) -> Link | None:
    """Store (or grow) the open proposal of the incident's parent; None when nothing to store."""
    if not incident or not incident.get("members"):
        return None
    now = now or utcnow()
    parent = int(incident["parent"])
    members = sorted({int(m) for m in incident["members"]})
    row = _open_for(session, parent)
    if row is None:
        row = Link(
            ticket_id=parent,
            target_id=parent,
            kind=KIND,
            created_by="burst-detector",
            created_at=now,
            data={},
        )
        session.add(row)
    known = set(row.data.get("members") or [])
    row.data = {
        **row.data,
        "members": sorted(known | set(members)),
        "label": incident.get("label"),
        "size": len(known | set(members)),
        "cohesion": incident.get("cohesion"),
        "status": "open",
    }
    session.flush()
    return row


def to_dict(row: Link, session: Session | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "parent": row.ticket_id,
        **dict(row.data or {}),
        "created_at": row.created_at.isoformat(),
        "decided_at": row.undone_at and row.undone_at.isoformat(),
    }
    if session is not None:
        parent = session.get(tickets.TicketRow, row.ticket_id)
        out["subject"] = parent.subject if parent is not None else None
    return out


def open_proposals(session: Session, *, limit: int = 50, offset: int = 0) -> list[dict]:
    rows = session.scalars(
        select(Link)
        .where(Link.kind == KIND, Link.undone_at.is_(None))
        .order_by(Link.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [to_dict(r, session) for r in rows]


def _get_open(session: Session, proposal_id: int) -> Link:
    row = session.get(Link, int(proposal_id))
    if row is None or row.kind != KIND:
        raise NotFound(f"incident proposal {proposal_id} not found", proposal=proposal_id)
    if row.undone_at is not None:
        raise TransitionError(
            f"incident proposal {proposal_id} was already {row.data.get('status')}", proposal=proposal_id
        )
    return row


def accept(session: Session, proposal_id: int, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """Make the parent a major incident and link every member to it."""
    now = now or utcnow()
    row = _get_open(session, proposal_id)
    parent = tickets.get(session, row.ticket_id, lock=True)
    linked, skipped = [], []
    for member in row.data.get("members") or []:
        if member == parent.id:
            continue
        try:
            with session.begin_nested():
                merge.link_incident(session, member, parent.id, actor=actor, now=now)
            linked.append(member)
        except (TransitionError, NotFound):
            skipped.append(member)  # e.g. itself the parent of another incident
    if "major-incident" not in (parent.tags or []):
        tickets.set_fields(
            session,
            parent,
            {"tags": sorted({*(parent.tags or []), "major-incident"})},
            actor=actor,
            now=now,
            retime=False,
        )
    row.data = {**row.data, "status": "accepted", "decided_by": actor, "linked": linked, "skipped": skipped}
    row.undone_at = now
    return to_dict(row, session)


def decline(session: Session, proposal_id: int, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    row = _get_open(session, proposal_id)
    row.data = {**row.data, "status": "declined", "decided_by": actor}
    row.undone_at = now
    return to_dict(row, session)
