"""Routing: which team, then which agent, assigned without races.

The team comes from the model when its decision is ``apply``, else from the
rules, else the ticket waits in the triage queue for a human.

Assignment is the one place where two service workers collide: both see the
same unassigned ticket and the same agent with one slot left. The ticket row
is locked first (``SELECT ... FOR UPDATE``), then the agent row, and the
agent's open load is counted *after* taking the agent lock, so the second
worker sees the first one's committed assignment. The ticket update is
conditional (``WHERE assignee IS NULL`` or the expected previous owner) and
its row count is checked, so even without the locks a lost race is detected
instead of overwritten. Locks are always taken ticket first, agent second,
and each candidate agent is tried inside a savepoint whose rollback releases
its lock before the next one is taken, so no worker holds one agent while
waiting for another: no deadlock. SQLite serialises writers (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from triage.errors import InputError, NotFound, TransitionError
from triage.store import bulk, event_log, tickets
from triage.store.tables import Agent, Team, TicketRow, agent_teams, utcnow
from triage.ticket import Status

OPEN = tickets.OPEN_STATUSES


@dataclass
class TeamChoice:
    team: str | None
    source: str  # "model" | "rules" | "triage"


def choose_team(model_fields: dict[str, Any] | None, rules_team: str | None) -> TeamChoice:
    """Model (decision apply) > rules > the triage queue."""
    head = (model_fields or {}).get("team") or {}
    if head.get("decision") == "apply" and head.get("label"):
        return TeamChoice(str(head["label"]), "model")
    if rules_team:
        return TeamChoice(str(rules_team), "rules")
    return TeamChoice(None, "triage")


def ensure_team(session: Session, name: str) -> Team:
    team = session.scalars(select(Team).where(Team.name == name)).first()
    if team is None:
        # another process may store it between this read and the insert (two gunicorn
        # workers' first tickets for a new team, on PostgreSQL): the insert then keeps
        # theirs, and the read below finds it, instead of failing the ticket with a 500
        session.connection().execute(_NEW_TEAM[session.get_bind().dialect.name], {"name": name})
        team = session.scalars(select(Team).where(Team.name == name)).one()
    return team


_NEW_TEAM = {
    name: dialect_insert(Team.__table__).on_conflict_do_nothing(index_elements=[Team.__table__.c.name])
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_TEAM_IF_NEW = {
    name: bulk.unless_present(statement, Team.__table__.c.name) for name, statement in _NEW_TEAM.items()
}


def ensure_team_once(session: Session, name: str) -> None:
    """:func:`ensure_team`, asked once per team in an ``event_log.batched`` block (a group
    commit routes many tickets to the same few teams).

    In a batch the team is not read: its row, if missing, is inserted with the batch's other
    rows (on PostgreSQL in their round trip; intake reads nothing of the team). The insert
    keeps a row another process stored meanwhile (``ON CONFLICT DO NOTHING``), and draws no
    id for a team already there (``bulk.unless_present``)."""
    seen = event_log.memo(session)
    if seen is None:
        ensure_team(session, name)
        return
    if ("team", name) in seen:
        return
    seen["team", name] = True
    event_log.write_later(session, _TEAM_IF_NEW[session.get_bind().dialect.name], [{"name": name}])


def upsert_agent(
    session: Session,
    agent_id: str,
    *,
    name: str = "",
    skills: Iterable[str] = (),
    capacity: int = 10,
    available: bool = True,
    teams: Iterable[str] = (),
) -> Agent:
    """Create or update an agent with its skills, capacity and teams."""
    agent = session.get(Agent, agent_id) or Agent(id=agent_id)
    agent.name, agent.skills = name or agent_id, sorted(set(skills))
    agent.capacity, agent.available = int(capacity), bool(available)
    agent.teams = [ensure_team(session, t) for t in teams]
    session.add(agent)
    session.flush()
    return agent


def open_load(session: Session, agent_id: str) -> int:
    """Open tickets an agent owns now (counted, never cached, so it cannot drift)."""
    stmt = (
        select(func.count())
        .select_from(TicketRow)
        .where(TicketRow.assignee == agent_id, TicketRow.status.in_(OPEN))
    )
    return int(session.scalar(stmt) or 0)


def candidates(
    session: Session, team: str, skills: Iterable[str] = (), *, senior: bool = False
) -> list[tuple[Agent, int]]:
    """Available agents of ``team`` below capacity, best first.

    Best = most of the wanted skills, then the lowest open load, then id (stable).
    ``senior`` puts seniority (desk.yaml: lead > senior > regular > junior) first.
    """
    from triage.desk import SENIORITY

    wanted = set(skills)
    load = (
        select(TicketRow.assignee, func.count().label("n"))
        .where(TicketRow.status.in_(OPEN), TicketRow.assignee.is_not(None))
        .group_by(TicketRow.assignee)
        .subquery()
    )
    stmt = (
        select(Agent, func.coalesce(load.c.n, 0))
        .join(agent_teams, agent_teams.c.agent_id == Agent.id)
        .join(Team, Team.id == agent_teams.c.team_id)
        .outerjoin(load, load.c.assignee == Agent.id)
        .where(Team.name == team, Agent.available.is_(True), Agent.active.is_not(False))
    )
    rows = [(agent, int(n)) for agent, n in session.execute(stmt) if n < agent.capacity]
    rank = (lambda a: -SENIORITY.get(a.seniority or "regular", 0)) if senior else (lambda a: 0)
    rows.sort(key=lambda r: (rank(r[0]), -len(wanted & set(r[0].skills or [])), r[1], r[0].id))
    return rows


def route(
    session: Session, ticket: TicketRow, choice: TeamChoice, *, actor: str, now: datetime | None = None
) -> None:
    """Put the ticket in its team's queue (or the triage queue), recording why."""
    queue = choice.team or tickets.TRIAGE_QUEUE
    tickets.set_fields(session, ticket, {"team": choice.team, "queue": queue}, actor=actor, now=now)


def assign(
    session: Session,
    ticket_id: int,
    *,
    actor: str,
    agent_id: str | None = None,
    skills: Iterable[str] = (),
    now: datetime | None = None,
    senior: bool = False,
    incomplete_ok: bool = False,
) -> TicketRow:
    """Give the ticket an owner: ``agent_id`` if named, else the best candidate of its team.

    Raises :class:`TransitionError` when nobody can take it (all at capacity,
    unavailable) or the named agent is full; never double-assigns.
    ``incomplete_ok`` (an escalated ticket): a ticket still missing mandatory
    fields gets its owner now and stays ``new`` until they are filled.
    """
    now = now or utcnow()
    ticket = tickets.get(session, ticket_id, lock=True)
    if ticket.status not in OPEN:
        raise TransitionError(
            f"ticket {ticket.id} is {ticket.status}: reopen it before assigning", ticket=ticket.id
        )
    if ticket.assignee is not None and agent_id in (None, ticket.assignee):
        if (
            ticket.status == Status.NEW.value
            and not tickets.missing_mandatory(ticket)
            and agent_id == ticket.assignee
        ):  # an urgent ticket's owner takes it up
            tickets.transition(session, ticket, Status.ASSIGNED, actor=actor, now=now)
        return ticket  # someone else routed it first (or asked twice): keep the owner
    missing = tickets.missing_mandatory(ticket) if ticket.status == Status.NEW.value else []
    if missing and not incomplete_ok:
        raise TransitionError(
            f"ticket {ticket.id} cannot leave new before {', '.join(missing)} are set",
            ticket=ticket.id,
            missing=missing,
        )
    if agent_id is not None:
        pool = [agent_id]
    else:
        if not ticket.team:
            raise TransitionError(
                f"ticket {ticket.id} has no team yet: it waits in the triage queue", ticket=ticket.id
            )
        pool = [a.id for a, _ in candidates(session, ticket.team, skills, senior=senior)]
    for candidate in pool:
        try:
            with session.begin_nested():  # a full agent's lock is released before the next
                if not _take_slot(session, ticket, candidate, actor, now, keep_new=bool(missing)):
                    raise _Full(candidate)
            return ticket
        except _Full:
            continue
    raise TransitionError(
        f"no agent can take ticket {ticket.id}: "
        + (
            "agent is unavailable or at capacity"
            if agent_id
            else f"team {ticket.team} has no available agent below capacity"
        ),
        ticket=ticket.id,
        team=ticket.team,
        agent=agent_id,
    )


class _Full(Exception):
    """Internal: this candidate cannot take the ticket (rolls its savepoint back)."""


def _take_slot(
    session: Session, ticket: TicketRow, agent_id: str, actor: str, now: datetime, keep_new: bool = False
) -> bool:
    """Lock the agent, recount their load, and conditionally claim the ticket."""
    agent = session.scalars(select(Agent).where(Agent.id == agent_id).with_for_update()).first()
    if agent is None:
        raise NotFound(f"agent {agent_id} not found", agent=agent_id)
    if not agent.available or open_load(session, agent_id) >= agent.capacity:
        return False
    previous = ticket.assignee
    guard = TicketRow.assignee.is_(None) if previous is None else TicketRow.assignee == previous
    result = session.execute(
        update(TicketRow)
        .where(TicketRow.id == ticket.id, guard)
        .values(assignee=agent_id, updated_at=now)
        .returning(TicketRow.id)
        .execution_options(synchronize_session=False)
    )
    if result.first() is None:  # the guard did not match: someone else got there first
        session.refresh(ticket)
        raise TransitionError(
            f"ticket {ticket.id} was assigned concurrently to {ticket.assignee}", ticket=ticket.id
        )
    session.refresh(ticket)
    tickets.record(session, ticket, "assignee", previous, agent_id, actor, now)
    if ticket.status in (Status.NEW.value, Status.ASSIGNED.value) and not keep_new:
        if ticket.status == Status.NEW.value or previous is not None:
            tickets.transition(session, ticket, Status.ASSIGNED, actor=actor, now=now)
    return True


def unassign(session: Session, ticket: TicketRow, *, actor: str, now: datetime | None = None) -> None:
    if ticket.assignee is None:
        return
    tickets.record(session, ticket, "assignee", ticket.assignee, None, actor, now or utcnow())
    ticket.assignee = None


def set_availability(session: Session, agent_id: str, available: bool) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found", agent=agent_id)
    if not isinstance(available, bool):
        raise InputError("available must be true or false", expected="bool", got=available)
    agent.available = available
    return agent


def team_state(session: Session, team: str | None, now: datetime) -> dict[str, Any] | None:
    """The team's queue now: open tickets, and the age in hours of the oldest (for the rules)."""
    if not team:
        return None
    stmt = select(func.count(), func.min(TicketRow.created_at)).where(
        TicketRow.status.in_(OPEN), (TicketRow.queue == team) | (TicketRow.team == team)
    )
    count, oldest = session.execute(stmt).one()
    age = (now - oldest).total_seconds() / 3600.0 if oldest is not None else 0.0
    return {"backlog": int(count or 0), "oldest_hours": max(0.0, age)}
