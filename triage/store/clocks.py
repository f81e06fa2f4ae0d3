"""SLA clocks in the store, the escalation sweep and the breach report.

``triage.sla`` does the arithmetic (pure); this module keeps each ticket's
clocks in ``sla_clocks`` and moves them with the ticket: start at creation
from the rules' policy, pause while pending, resume after, re-target on a
priority change, stop on the first public agent reply (response clock) and
on resolution. A clock row carries its own targets per priority, so a
re-target after an admin edits the policy still follows the policy the
ticket was opened under.

The sweep fires each escalation level exactly once: the level is inserted
with ``ON CONFLICT DO NOTHING`` against a unique (ticket, clock, level)
constraint and only the sweeper whose insert landed raises the event and
queues the webhooks, so repeated and concurrent sweeps agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from triage.sla import Clock, EscalationLevel, SlaPolicy, add_business_time, levels_reached
from triage.store import event_log
from triage.store.tables import Escalation, SlaClockRow, TicketRow, utcnow

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
KINDS = (FIRST_RESPONSE, RESOLUTION)
DEFAULT_LEVELS = [EscalationLevel("warning", 0.75), EscalationLevel("breach", 1.0)]
SYSTEM = "system:sla"
OPEN = ("new", "assigned", "in_progress", "pending")


# ----------------------------------------------------------------- rows <-> clocks
def _clock(row: SlaClockRow) -> Clock:
    return Clock.from_dict(row.state["clock"])


def _levels(row: SlaClockRow) -> list[EscalationLevel]:
    """The escalation levels the clock was started with (policy edits do not move them)."""
    stored = row.state.get("levels")
    if not stored:
        return list(DEFAULT_LEVELS)
    return sorted((EscalationLevel(n, float(a)) for n, a in stored), key=lambda lv: lv.at)


def _save(row: SlaClockRow, clock: Clock, now: datetime) -> None:
    """Write the clock back and refresh the copies the sweep and the report index."""
    row.state = {**row.state, "clock": clock.to_dict()}
    row.running = clock.stopped_at is None
    row.paused = clock.paused
    row.stopped_at = clock.stopped_at
    row.due_at = clock.due_at(now) if not clock.paused else _due_if_resumed(clock, now)
    row.breached = clock.state(now) == "breached"
    row.next_level_at = _next_level_at(row, clock, now, _levels(row))


def _due_if_resumed(clock: Clock, now: datetime) -> datetime | None:
    """A paused clock's due time as if it resumed now (shown, never swept)."""
    return clock.resume(now).due_at(now)


def _next_level_at(
    row: SlaClockRow, clock: Clock, now: datetime, levels: list[EscalationLevel]
) -> datetime | None:
    """When the next not-yet-fired level is reached, if the clock keeps running."""
    if not row.running or clock.paused:
        return None
    fired = set(row.state.get("fired", []))
    for level in sorted(levels, key=lambda lv: lv.at):
        if level.name in fired:
            continue
        return replace(clock, target_minutes=clock.target_minutes * level.at).due_at(now) or now
    return None


def _rows(session: Session, ticket_id: int, kinds: Iterable[str] = KINDS) -> list[SlaClockRow]:
    stmt = select(SlaClockRow).where(SlaClockRow.ticket_id == ticket_id, SlaClockRow.kind.in_(list(kinds)))
    return list(session.scalars(stmt))


def _event(
    session: Session, ticket: TicketRow, field: str, old: Any, new: Any, now: datetime, actor: str = SYSTEM
) -> None:
    event_log.add(
        session,
        ticket_id=ticket.id,
        field=field,
        old=None if old is None else str(old),
        new=None if new is None else str(new),
        actor=actor,
        at=now,
    )


# ----------------------------------------------------------------- lifecycle hooks
def start(
    session: Session,
    ticket: TicketRow,
    policy: SlaPolicy,
    now: datetime,
    *,
    priority: int | None = None,
    tier: str | None = None,
    levels: list[EscalationLevel] | None = None,
    fresh: bool = False,
) -> list[SlaClockRow]:
    """Start both clocks from ``policy`` for the ticket's priority and customer tier.

    ``fresh``: the ticket was created in this unit of work, so it has no clocks to
    look for, and the rows are written with one Core INSERT (the returned rows are then
    not in the session: read them back with a query to change them).

    A ticket whose priority is still open is timed at ``priority`` (the rules'
    default) so nothing goes untimed; setting the real priority re-targets.
    Each row keeps the policy's targets per priority and the escalation levels.
    """
    priority = ticket.priority or priority
    tier = (tier or ticket.customer_tier or "").lower() or None
    if priority is None or (not fresh and _rows(session, ticket.id)):
        return []
    ordered = sorted(levels or DEFAULT_LEVELS, key=lambda lv: lv.at)
    stored_levels = [[lv.name, lv.at] for lv in ordered]
    rows, values = [], []
    for kind in KINDS:
        targets = {str(t.priority): getattr(t, kind) for t in policy.targets if t.tier is None}
        for t in policy.targets:  # tier-specific rows win over generic ones
            if t.tier is not None and t.tier.lower() == tier:
                targets[str(t.priority)] = getattr(t, kind)
        if str(priority) not in targets:
            continue
        clock = Clock.start(now, targets[str(priority)], policy.calendar, name=kind)
        state = {"targets": targets, "fired": [], "levels": stored_levels}
        if fresh:  # nothing to look up: the values straight from the clock, a row built as loaded
            values.append(_started(ticket.id, kind, policy.name, state, clock, ordered[0]))
            row = _as_row(values[-1])
        else:
            row = SlaClockRow(ticket_id=ticket.id, kind=kind, policy=policy.name, state=state)
            _save(row, clock, now)
            session.add(row)
        rows.append(row)
        _event(session, ticket, f"sla.{kind}", None, row.due_at.isoformat(), now)
    if values:  # one Core INSERT for both clocks (with a batch's others): no ids read back
        if ticket.status == "pending":  # pause() below reads them back
            session.connection().execute(_INSERT, values)
        else:
            event_log.write_later(session, _INSERT, values)
    if ticket.status == "pending":
        pause(session, ticket, now)
    if not fresh:
        session.flush()
    return rows


_INSERT = insert(SlaClockRow.__table__)  # built once: its compiled form stays cached
_NEW_ROW = SlaClockRow.__mapper__.class_manager.new_instance  # an instance, no __init__


def _started(
    ticket_id: int, kind: str, policy: str, state: dict, clock: Clock, first: EscalationLevel
) -> dict[str, Any]:
    """The row of a clock started just now: what :func:`_save` stores, without asking the
    clock what it says at its own start (nothing elapsed, not paused, nothing fired yet)."""
    start, cal = clock.started_at, clock.calendar
    return {
        "ticket_id": ticket_id,
        "kind": kind,
        "policy": policy,
        "state": {**state, "clock": clock.to_dict()},
        "running": True,
        "paused": False,
        "stopped_at": None,
        "due_at": add_business_time(start, clock.target_minutes, cal),
        "breached": False,
        "next_level_at": add_business_time(start, clock.target_minutes * first.at, cal),
    }


def _as_row(values: dict[str, Any]) -> SlaClockRow:
    """A transient row holding ``values`` (read by the caller, never added to a session)."""
    row = _NEW_ROW()
    row.__dict__.update(values)
    return row


def pause(session: Session, ticket: TicketRow, now: datetime) -> None:
    for row in _rows(session, ticket.id):
        if row.running:
            _save(row, _clock(row).pause(now), now)


def resume(session: Session, ticket: TicketRow, now: datetime) -> None:
    for row in _rows(session, ticket.id):
        if row.running:
            _save(row, _clock(row).resume(now), now)


def stop(session: Session, ticket: TicketRow, kind: str, now: datetime) -> None:
    for row in _rows(session, ticket.id, [kind]):
        if row.running:
            clock = _clock(row).stop(now)
            _save(row, clock, now)
            _event(session, ticket, f"sla.{kind}", "running", clock.state(now), now)


def running_kinds(session: Session, ticket: TicketRow) -> list[str]:
    return [row.kind for row in _rows(session, ticket.id) if row.running]


def restart(session: Session, ticket: TicketRow, kind: str, now: datetime) -> None:
    """Reopen: the stopped clock counts again; the time it stood still counts as a pause."""
    for row in _rows(session, ticket.id, [kind]):
        clock = _clock(row)
        if clock.stopped_at is None:
            continue
        clock = replace(
            clock, stopped_at=None, pauses=clock.pauses + ((clock.stopped_at, max(now, clock.stopped_at)),)
        )
        _save(row, clock, now)
        _event(session, ticket, f"sla.{kind}", "stopped", "running", now)


def retarget(session: Session, ticket: TicketRow, now: datetime) -> None:
    """A priority change: each running clock takes the target of the new priority."""
    for row in _rows(session, ticket.id):
        minutes = row.state.get("targets", {}).get(str(ticket.priority))
        if not row.running or minutes is None:
            continue
        before = row.due_at
        _save(row, _clock(row).retarget(minutes, now), now)
        _event(
            session,
            ticket,
            f"sla.{row.kind}",
            before and before.isoformat(),
            row.due_at and row.due_at.isoformat(),
            now,
        )


def change_policy(session: Session, ticket: TicketRow, policy: SlaPolicy, now: datetime) -> None:
    """Rules chose another SLA policy (e.g. an agent accepted P1): running clocks take its
    targets for the ticket's priority and tier; time already spent stays spent."""
    tier = (ticket.customer_tier or "").lower() or None
    for row in _rows(session, ticket.id):
        if not row.running or row.policy == policy.name:
            continue
        kind = row.kind
        targets = {str(t.priority): getattr(t, kind) for t in policy.targets if t.tier is None}
        targets.update(
            {
                str(t.priority): getattr(t, kind)
                for t in policy.targets
                if t.tier is not None and t.tier.lower() == tier
            }
        )
        minutes = targets.get(str(ticket.priority))
        if minutes is None:
            continue
        before, old_policy = row.due_at, row.policy
        row.policy, row.state = policy.name, {**row.state, "targets": targets}
        _save(row, _clock(row).retarget(minutes, now), now)
        _event(session, ticket, f"sla.{kind}.policy", old_policy, policy.name, now)
        _event(
            session,
            ticket,
            f"sla.{kind}",
            before and before.isoformat(),
            row.due_at and row.due_at.isoformat(),
            now,
        )


def on_transition(session: Session, ticket: TicketRow, old: str, new: str, now: datetime) -> None:
    """Pending pauses, leaving pending resumes, resolution stops, reopening restarts."""
    if new == "pending":
        pause(session, ticket, now)
    elif old == "pending":
        resume(session, ticket, now)
    if new in ("resolved", "closed"):
        for kind in KINDS:
            stop(session, ticket, kind, now)
    elif old in ("resolved", "closed"):
        restart(session, ticket, RESOLUTION, now)


# ----------------------------------------------------------------- escalation sweep
@dataclass
class Fired:
    ticket_id: int
    clock: str
    level: int
    name: str
    due_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "clock": self.clock,
            "level": self.level,
            "name": self.name,
            "due_at": self.due_at and self.due_at.isoformat(),
        }


def _insert_landed(session: Session, items: list[Fired], now: datetime) -> list[Fired]:
    """Insert the escalations unless they exist; keep only the ones whose insert landed.

    One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the batch
    (rowcount is -1 on psycopg, so RETURNING says what landed).
    """
    if not items:
        return []
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(Escalation)
        .values(
            [
                {"ticket_id": f.ticket_id, "clock": f.clock, "level": f.level, "name": f.name, "at": now}
                for f in items
            ]
        )
        .on_conflict_do_nothing()
        .returning(Escalation.ticket_id, Escalation.clock, Escalation.level)
    )
    landed = {tuple(r) for r in session.execute(stmt)}
    return [f for f in items if (f.ticket_id, f.clock, f.level) in landed]


def sweep(session: Session, now: datetime | None = None, limit: int = 1000) -> list[Fired]:
    """One escalation pass over at most ``limit`` due clocks (see :func:`sweep_all`)."""
    return _sweep(session, now or utcnow(), limit)[0]


def sweep_all(store, now: datetime | None = None, limit: int = 500) -> list[Fired]:
    """Sweep in batches of ``limit`` clocks, one transaction each, until nothing is due."""
    now, fired = now or utcnow(), []
    while True:
        with store.session() as session:
            batch, processed = _sweep(session, now, limit)
        fired += batch
        if processed < limit:
            return fired


def _sweep(session: Session, now: datetime, limit: int) -> tuple[list[Fired], int]:
    """Every level reached and not yet recorded fires once; returns (fired, clocks read).

    Only clocks whose ``next_level_at`` has passed are read (an index scan),
    locked with SKIP LOCKED on PostgreSQL so concurrent sweepers share the work.
    The batch is written with a handful of statements, not a few per clock.
    """
    from triage.store import notices, webhooks  # the outbox is written in this same transaction

    stmt = (
        select(SlaClockRow)
        .where(SlaClockRow.running.is_(True), SlaClockRow.next_level_at <= now)
        .order_by(SlaClockRow.next_level_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.scalars(stmt))
    due: list[Fired] = []
    with session.no_autoflush:
        for row in rows:
            clock, ordered = _clock(row), _levels(row)
            reached = levels_reached(clock, ordered, now)
            fired_before = set(row.state.get("fired", []))
            due += [
                Fired(row.ticket_id, row.kind, ordered.index(lv) + 1, lv.name, row.due_at)
                for lv in reached
                if lv.name not in fired_before
            ]
            row.state = {**row.state, "fired": sorted(fired_before | {lv.name for lv in reached})}
            _save(row, clock, now)
    due.sort(key=lambda f: (f.ticket_id, f.clock, f.level))  # one lock order for every sweeper
    fired = _insert_landed(session, due, now)
    _raise(session, fired, now)
    webhooks.queue_many(session, "ticket.escalated", [f.to_dict() for f in fired], now)
    notices.deadline(session, fired, now)  # people hear of it too, not only a webhook
    session.flush()
    return fired, len(rows)


def _raise(session: Session, fired: list[Fired], now: datetime) -> None:
    """Show escalations on their tickets: the level (agent views sort by it) and an event."""
    ids = sorted({f.ticket_id for f in fired})
    found = {t.id: t for t in session.scalars(select(TicketRow).where(TicketRow.id.in_(ids)))} if ids else {}
    for item in fired:
        ticket = found[item.ticket_id]
        old = ticket.escalation_level
        ticket.escalation_level = max(old, item.level)
        _event(session, ticket, f"escalation.{item.clock}", old, f"{item.level}:{item.name}", now)


# ----------------------------------------------------------------- reports
def clocks_of(session: Session, ticket_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    out = []
    for row in _rows(session, ticket_id):
        clock = _clock(row)
        out.append(
            {
                "kind": row.kind,
                "policy": row.policy,
                "state": clock.state(now),
                "due_at": row.due_at and row.due_at.isoformat(),
                "elapsed_minutes": round(clock.elapsed(now), 2),
                "target_minutes": round(clock.target_minutes, 2),
                "paused": clock.paused,
                "stopped_at": row.stopped_at and row.stopped_at.isoformat(),
            }
        )
    return out


def breaches(
    session: Session, now: datetime | None = None, *, include_closed: bool = False, limit: int = 1000
) -> list[dict[str, Any]]:
    """Over-time clocks, most overdue first: running past due, or stopped after due.

    Open tickets only unless ``include_closed`` (then resolved/closed late ones too).
    """
    now = now or utcnow()
    stmt = (
        select(SlaClockRow, TicketRow)
        .join(TicketRow, TicketRow.id == SlaClockRow.ticket_id)
        .where(SlaClockRow.due_at <= now, or_(SlaClockRow.running.is_(True), SlaClockRow.breached.is_(True)))
        .order_by(SlaClockRow.due_at)
        .limit(limit)
    )
    if not include_closed:
        stmt = stmt.where(TicketRow.status.in_(OPEN))
    out = []
    for row, ticket in session.execute(stmt):
        clock = _clock(row)
        state = clock.state(now)
        if state != "breached":
            continue
        out.append(
            {
                "ticket_id": ticket.id,
                "subject": ticket.subject,
                "status": ticket.status,
                "priority": ticket.priority,
                "team": ticket.team,
                "assignee": ticket.assignee,
                "clock": row.kind,
                "policy": row.policy,
                "state": state,
                "due_at": row.due_at and row.due_at.isoformat(),
                "overdue_minutes": round(clock.elapsed(now) - clock.target_minutes, 2),
                "escalation_level": ticket.escalation_level,
            }
        )
    return out
