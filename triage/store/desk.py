"""The desk in the database: apply a ``desk.yaml`` (or one admin edit), diff, and record who.

``apply`` compares what the file says with what the tables hold, field by
field, and writes only the differences, each as a ``desk_changes`` row naming
the actor and the source (a file path or ``api``). Applying the same file twice
therefore changes nothing and records nothing the second time. Objects missing
from the file are retired (``active`` false, an agent also unavailable), never
deleted: tickets and history still name them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.desk import AgentSpec, Desk, QueueSpec, TeamSpec
from triage.errors import InputError, NotFound
from triage.store.tables import Agent, DeskChange, DeskQueue, Team, utcnow


@dataclass(frozen=True)
class Change:
    kind: str  # team | agent | queue
    name: str
    field: str  # "created", "retired" or the changed field
    old: Any
    new: Any

    def __str__(self) -> str:
        if self.field == "created":
            return f"+ {self.kind} {self.name}"
        if self.field == "retired":
            return f"- {self.kind} {self.name} (retired: not in the desk file)"
        return f"~ {self.kind} {self.name}: {self.field} {self.old!r} -> {self.new!r}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "field": self.field, "old": self.old, "new": self.new}


# ----------------------------------------------------------------- reading
def team_data(team: Team) -> dict:
    return {
        "calendar": team.calendar,
        "escalation_contacts": list(team.escalation_contacts or []),
        "description": team.description or "",
    }


def agent_data(agent: Agent) -> dict:
    return {
        "name": agent.name,
        "email": agent.email,
        "teams": sorted(t.name for t in agent.teams),
        "skills": sorted(agent.skills or []),
        "capacity": agent.capacity,
        "seniority": agent.seniority or "regular",
        "available": bool(agent.available),
    }


def queue_data(queue: DeskQueue) -> dict:
    return {"team": queue.team, "description": queue.description or ""}


def current(session: Session) -> dict:
    """The active desk as JSON data, in the shape of ``Desk.to_dict``."""
    teams = session.scalars(select(Team).where(Team.active.is_not(False)).order_by(Team.name))
    agents = session.scalars(select(Agent).where(Agent.active.is_not(False)).order_by(Agent.id))
    queues = session.scalars(select(DeskQueue).where(DeskQueue.active.is_not(False)).order_by(DeskQueue.name))
    return {
        "teams": {t.name: team_data(t) for t in teams},
        "agents": {a.id: agent_data(a) for a in agents},
        "queues": {q.name: queue_data(q) for q in queues},
    }


def team_names(session: Session) -> list[str]:
    return list(session.scalars(select(Team.name).where(Team.active.is_not(False)).order_by(Team.name)))


# ----------------------------------------------------------------- writing
def apply(
    session: Session,
    desk: Desk,
    *,
    actor: str,
    source: str,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Change]:
    """Make the tables say what ``desk`` says; return (and, unless dry, record) the changes."""
    now = now or utcnow()
    changes: list[Change] = []
    for spec in desk.teams.values():
        changes += put_team(session, spec, actor=actor, source=source, dry_run=dry_run, now=now)
    for spec in desk.agents.values():
        changes += put_agent(session, spec, actor=actor, source=source, dry_run=dry_run, now=now)
    for spec in desk.queues.values():
        changes += put_queue(session, spec, actor=actor, source=source, dry_run=dry_run, now=now)
    changes += _retire(session, desk, actor=actor, source=source, dry_run=dry_run, now=now)
    if not dry_run:
        session.flush()
    return changes


def _put(
    session: Session,
    kind: str,
    key: str,
    row: Any,
    data: Callable[[Any], dict[str, Any]],
    wanted: dict[str, Any],
    make: Callable[[], Any],
    assign: Callable[[Any], None],
    *,
    actor: str,
    source: str,
    dry_run: bool,
    now: datetime | None,
) -> list[Change]:
    """Diff the stored ``row`` (None: missing) with ``wanted``; unless ``dry_run``, create it
    if missing (``make``), write the wanted values (``assign``) and record the changes.
    An inactive row counts as missing: putting it back is a change."""
    old = data(row) if row is not None and row.active is not False else None
    changes = _diff(kind, key, old, wanted)
    if changes and not dry_run:
        if row is None:
            row = make()
            session.add(row)
        assign(row)
        row.active = True
        _record(session, changes, actor, source, now)
    return changes


def put_team(
    session: Session,
    spec: TeamSpec,
    *,
    actor: str,
    source: str,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Change]:
    def assign(team: Team) -> None:
        team.calendar, team.description = spec.calendar, spec.description
        team.escalation_contacts = list(spec.escalation_contacts)

    team = session.scalars(select(Team).where(Team.name == spec.name)).first()
    return _put(
        session,
        "team",
        spec.name,
        team,
        team_data,
        spec.data(),
        lambda: Team(name=spec.name),
        assign,
        actor=actor,
        source=source,
        dry_run=dry_run,
        now=now,
    )


def put_agent(
    session: Session,
    spec: AgentSpec,
    *,
    actor: str,
    source: str,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Change]:
    data = spec.data()

    def assign(agent: Agent) -> None:
        for team in data["teams"]:
            if (
                session.scalars(select(Team).where(Team.name == team, Team.active.is_not(False))).first()
                is None
            ):
                raise InputError(
                    f"agent {spec.id}: unknown team", column="teams", expected="a team of the desk", got=team
                )
        agent.name, agent.email, agent.skills = data["name"], data["email"], data["skills"]
        agent.capacity, agent.seniority = data["capacity"], data["seniority"]
        agent.available = data["available"]
        agent.teams = list(session.scalars(select(Team).where(Team.name.in_(data["teams"]))))

    return _put(
        session,
        "agent",
        spec.id,
        session.get(Agent, spec.id),
        agent_data,
        data,
        lambda: Agent(id=spec.id),
        assign,
        actor=actor,
        source=source,
        dry_run=dry_run,
        now=now,
    )


def put_queue(
    session: Session,
    spec: QueueSpec,
    *,
    actor: str,
    source: str,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Change]:
    def assign(queue: DeskQueue) -> None:
        queue.team, queue.description = spec.team, spec.description

    return _put(
        session,
        "queue",
        spec.name,
        session.get(DeskQueue, spec.name),
        queue_data,
        spec.data(),
        lambda: DeskQueue(name=spec.name),
        assign,
        actor=actor,
        source=source,
        dry_run=dry_run,
        now=now,
    )


def set_availability(
    session: Session, agent_id: str, available: bool, *, actor: str, now: datetime | None = None
) -> list[Change]:
    """An agent going off shift or on leave (the admin page's toggle)."""
    agent = session.get(Agent, agent_id)
    if agent is None or agent.active is False:
        raise NotFound(f"agent {agent_id} not found", agent=agent_id)
    if agent.available == available:
        return []
    change = Change("agent", agent_id, "available", agent.available, available)
    agent.available = available
    _record(session, [change], actor, "api", now)
    return [change]


def _retire(
    session: Session, desk: Desk, *, actor: str, source: str, dry_run: bool, now: datetime | None
) -> list[Change]:
    changes: list[Change] = []
    for agent in session.scalars(select(Agent).where(Agent.active.is_not(False))):
        if agent.id not in desk.agents:
            changes.append(Change("agent", agent.id, "retired", True, False))
            if not dry_run:
                agent.active, agent.available = False, False
    for queue in session.scalars(select(DeskQueue).where(DeskQueue.active.is_not(False))):
        if queue.name not in desk.queues:
            changes.append(Change("queue", queue.name, "retired", True, False))
            if not dry_run:
                queue.active = False
    for team in session.scalars(select(Team).where(Team.active.is_not(False))):
        if team.name not in desk.teams:
            changes.append(Change("team", team.name, "retired", True, False))
            if not dry_run:
                team.active = False
    if not dry_run:
        _record(session, changes, actor, source, now)
    return changes


def _diff(kind: str, name: str, old: dict | None, new: dict) -> list[Change]:
    if old is None:
        return [Change(kind, name, "created", None, new)]
    return [
        Change(kind, name, key, old.get(key), value) for key, value in new.items() if old.get(key) != value
    ]


def _record(session: Session, changes: list[Change], actor: str, source: str, now: datetime | None) -> None:
    at = now or utcnow()
    for c in changes:
        session.add(
            DeskChange(
                kind=c.kind,
                name=c.name,
                field=c.field,
                old=_text(c.old),
                new=_text(c.new),
                actor=actor,
                source=source[:300],
                at=at,
            )
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def changes_log(session: Session, *, limit: int = 100, offset: int = 0) -> list[dict]:
    """The newest desk changes first: who changed what, when, from where."""
    stmt = select(DeskChange).order_by(DeskChange.id.desc()).limit(limit).offset(offset)
    return [
        {
            "id": c.id,
            "kind": c.kind,
            "name": c.name,
            "field": c.field,
            "old": c.old,
            "new": c.new,
            "actor": c.actor,
            "source": c.source,
            "at": c.at.isoformat(),
        }
        for c in session.scalars(stmt)
    ]
