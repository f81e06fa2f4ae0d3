"""A VIP during an open major incident: raised, linked and given to a senior agent, unasked.

An open major incident is an open ticket that other tickets are linked to as
their parent incident, or one tagged ``major-incident``. A new ticket from a VIP
(``vip`` true, or tier vip / platinum) that concerns the same affected service,
or the same team, is linked to it; the rules then run again with
``major_incident`` true (the default rules make it P1 on the major-incident
policy and escalate it) and a senior agent of the team is asked to own it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from triage.store import merge, tickets
from triage.store.tables import Link, TicketRow

VIP_TIERS = ("vip", "platinum")


def is_vip(ticket: TicketRow) -> bool:
    return bool((ticket.extra or {}).get("vip")) or (ticket.customer_tier or "").lower() in VIP_TIERS


def open_major_incident(session: Session, ticket: TicketRow) -> TicketRow | None:
    """The newest open major incident about this ticket's service (else its team), if any."""
    if not (ticket.affected_service or ticket.team):
        return None
    parents = set(
        session.scalars(
            select(Link.target_id).where(Link.kind == merge.PARENT_INCIDENT, Link.undone_at.is_(None))
        )
    )
    same = []
    if ticket.affected_service:
        same.append(TicketRow.affected_service == ticket.affected_service)
    if ticket.team:
        same.append(TicketRow.team == ticket.team)
    rows = session.scalars(
        select(TicketRow)
        .where(TicketRow.id != ticket.id, TicketRow.status.in_(tickets.OPEN_STATUSES), or_(*same))
        .order_by(TicketRow.id.desc())
        .limit(500)
    )
    candidates = [r for r in rows if r.id in parents or "major-incident" in (r.tags or [])]
    if not candidates:
        return None
    by_service = [
        r for r in candidates if ticket.affected_service and r.affected_service == ticket.affected_service
    ]
    return (by_service or candidates)[0]


def attach_vip(session: Session, ticket: TicketRow, *, now: datetime) -> TicketRow | None:
    """Link a VIP's new ticket to the open major incident it belongs to; returns the parent."""
    if not is_vip(ticket) or merge.active_link(session, ticket.id, merge.PARENT_INCIDENT):
        return None
    parent = open_major_incident(session, ticket)
    if parent is None or merge.active_link(session, parent.id, merge.PARENT_INCIDENT):
        return None
    merge.link_incident(session, ticket.id, parent.id, actor="rules:vip-major-incident", now=now)
    ticket.extra = {**(ticket.extra or {}), "major_incident": True}
    if parent.team and not ticket.team:
        tickets.set_fields(session, ticket, {"team": parent.team}, actor="rules", now=now, retime=False)
    return parent
