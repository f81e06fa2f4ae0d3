"""Who may see which ticket.

A requester asking for someone else's ticket gets :class:`NotFound`, exactly
as for an id that does not exist, so ids cannot be probed. Agents see the
queues of their teams (and whatever they own); admins see everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.errors import NotFound, TriageError
from triage.store import tickets
from triage.store.tables import Agent, Team, TicketRow, agent_teams

ROLES = ("requester", "agent", "admin")


class Forbidden(TriageError):
    status = 403


@dataclass(frozen=True)
class Viewer:
    """Who is asking: ``role`` is requester, agent or admin; ``id`` the person."""

    role: str
    id: str | None = None
    teams: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_staff(self) -> bool:
        return self.role in ("agent", "admin")


def viewer_for(session: Session, role: str, identity: str | None) -> Viewer:
    """Build a viewer, loading an agent's teams from the store."""
    if role not in ROLES:
        raise Forbidden(f"unknown role {role!r}", expected="|".join(ROLES))
    if role == "requester" and not identity:
        raise Forbidden(
            "this key reads tickets on behalf of one requester: send the header "
            "X-Requester: <their e-mail> (an agent or admin key lists every ticket)"
        )
    teams: frozenset[str] = frozenset()
    if role == "agent" and identity:
        stmt = (
            select(Team.name)
            .join(agent_teams, agent_teams.c.team_id == Team.id)
            .where(agent_teams.c.agent_id == identity)
        )
        teams = frozenset(session.scalars(stmt))
    return Viewer(role, identity, teams)


def can_see(viewer: Viewer, ticket: TicketRow) -> bool:
    if viewer.role == "admin":
        return True
    if viewer.role == "requester":
        return ticket.requester is not None and ticket.requester == viewer.id
    return (
        ticket.assignee == viewer.id
        or ticket.queue in viewer.teams
        or ticket.team in viewer.teams
        or ticket.queue == tickets.TRIAGE_QUEUE
    )


def visible(session: Session, viewer: Viewer, ticket_id: int, *, lock: bool = False) -> TicketRow:
    """The ticket if ``viewer`` may see it; otherwise NotFound, same as a missing id."""
    try:
        ticket = tickets.get(session, ticket_id, lock=lock)
    except NotFound:
        raise NotFound(f"ticket {ticket_id} not found", ticket=ticket_id) from None
    if not can_see(viewer, ticket):
        raise NotFound(f"ticket {ticket_id} not found", ticket=ticket_id)
    return ticket


def require_staff(viewer: Viewer) -> None:
    if not viewer.is_staff:
        raise Forbidden("only agents and admins may do this", role=viewer.role)


def list_visible(
    session: Session,
    viewer: Viewer,
    *,
    queue: str | None = None,
    status: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[TicketRow]:
    """The tickets a viewer may list; an agent's queue filter must be one of their own."""
    if viewer.role == "requester":
        return tickets.query(
            session, requester=viewer.id, status=status, queue=queue, limit=limit, offset=offset
        )
    if viewer.role == "agent":
        allowed = set(viewer.teams) | {tickets.TRIAGE_QUEUE}
        if queue and queue not in allowed:
            raise NotFound(f"queue {queue} not found", queue=queue)
        return tickets.query(
            session, queue=queue, teams=None if queue else allowed, status=status, limit=limit, offset=offset
        )
    return tickets.query(session, queue=queue, status=status, limit=limit, offset=offset)


def agent_exists(session: Session, agent_id: str) -> bool:
    return session.get(Agent, agent_id) is not None
