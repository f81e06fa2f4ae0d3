"""Which changes tell whom what, by mail: the triggers of the outbound templates.

Each function queues at most one mail (a ``dedupe_key`` per cause) in the
caller's transaction, through :mod:`triage.store.outbound`:

- ``received``   the ticket was opened: number, summary, when a first answer is due
- ``reply``      an agent's public reply, to the requester and the watchers
- ``resolved``   the ticket was resolved: with the one-click satisfaction link
- ``reminder``   a ticket waits on the customer (pending) longer than the reminder delay
- ``deadline``   an escalation level fired: the assignee and the team lead are told
                 before the response or resolution deadline passes (and when it has)

Only addresses receive mail: a requester known by an id gets none. Staff
addresses come from the desk (desk.yaml): an agent's ``email`` and a team's
``escalation_contacts`` (the team leads); an agent id that is an address is used too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store import outbound
from triage.store.tables import Agent, Comment, SlaClockRow, Team, TicketEvent, TicketRow, Watcher, utcnow
from triage.ticket import reference

SUMMARY_CHARS = 600


def _base(ticket: TicketRow) -> dict[str, Any]:
    return {
        "ticket_id": ticket.id,
        "reference": reference(ticket.id),
        "ticket_subject": ticket.subject or "(no subject)",
        "status": ticket.status,
        "priority": ticket.priority,
        "team": ticket.team,
    }


def _customers(session: Session, ticket: TicketRow, *, watchers: bool = True) -> list[str]:
    found = [ticket.requester or ""]
    if watchers:
        found += list(session.scalars(select(Watcher.address).where(Watcher.ticket_id == ticket.id)))
    return [a for a in found if outbound.mail_address(a)]


def _due(session: Session, ticket_id: int, kind: str) -> datetime | None:
    row = session.scalars(
        select(SlaClockRow).where(SlaClockRow.ticket_id == ticket_id, SlaClockRow.kind == kind)
    ).first()
    return row.due_at if row is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def received(
    session: Session,
    ticket: TicketRow,
    now: datetime | None = None,
    due: dict[str, datetime | None] | None = None,
) -> None:
    """``due``: the due time of each clock (``first_response``, ``resolution``) when the
    caller has just started them (intake); otherwise they are read from the store."""
    if due is None:
        due = {kind: _due(session, ticket.id, kind) for kind in ("first_response", "resolution")}
    context = {
        **_base(ticket),
        "summary": (ticket.body or "")[:SUMMARY_CHARS],
        "first_response_due": _iso(due.get("first_response")),
        "resolution_due": _iso(due.get("resolution")),
        "follow_up_of": _follow_up_of(ticket),
    }
    outbound.queue_quietly(
        session,
        "received",
        _customers(session, ticket, watchers=False),
        subject=ticket.subject or "Your request",
        context=context,
        ticket_id=ticket.id,
        dedupe_key=f"received:{ticket.id}",
        auto_submitted="auto-replied",
        now=now,
    )


def _follow_up_of(ticket: TicketRow) -> str | None:
    """The closed ticket this one follows up (a customer answered it after closure)."""
    closed = (ticket.extra or {}).get("follow_up_of")
    return reference(closed) if isinstance(closed, int) else None


def reply(
    session: Session,
    ticket: TicketRow,
    comment: Comment,
    attachments: Iterable[dict] = (),
    now: datetime | None = None,
) -> None:
    context = {**_base(ticket), "author": comment.author, "body": comment.body}
    outbound.queue(
        session,
        "reply",
        _customers(session, ticket),
        subject=ticket.subject or "",
        context=context,
        ticket_id=ticket.id,
        dedupe_key=f"reply:{comment.id}",
        attachments=list(attachments),
        now=now,
    )


def attach_to_reply(session: Session, comment_id: int, files: list[dict]) -> None:
    """Files uploaded with a reply travel with its (not yet sent) mail."""
    from triage.store.tables import OutboxMessage

    row = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.dedupe_key == f"reply:{comment_id}", OutboxMessage.delivered_at.is_(None)
        )
    ).first()
    if row is not None:
        row.payload = {**row.payload, "attachments": list(row.payload.get("attachments", [])) + files}


def resolved(session: Session, ticket: TicketRow, now: datetime | None = None) -> None:
    from triage.store import satisfaction

    survey = satisfaction.request(session, ticket, now)
    stamp = (ticket.resolved_at or now or utcnow()).isoformat()
    context = {
        **_base(ticket),
        "resolution": ticket.resolution,
        "survey_token": survey.token,
        "rated": survey.rating is not None,
    }
    outbound.queue(
        session,
        "resolved",
        _customers(session, ticket),
        subject=ticket.subject or "",
        context=context,
        ticket_id=ticket.id,
        dedupe_key=f"resolved:{ticket.id}:{stamp}",
        now=now,
    )


def remind_pending(session: Session, now: datetime, after: timedelta, limit: int = 500) -> int:
    """One reminder per pending spell longer than ``after``; returns how many were queued."""
    if after.total_seconds() <= 0:
        return 0
    pending = session.scalars(
        select(TicketRow)
        .where(TicketRow.status == "pending", TicketRow.updated_at <= now - after)
        .limit(limit)
    )
    queued = 0
    for ticket in pending:
        since = session.scalars(
            select(TicketEvent)
            .where(
                TicketEvent.ticket_id == ticket.id,
                TicketEvent.field == "status",
                TicketEvent.new == "pending",
            )
            .order_by(TicketEvent.id.desc())
        ).first()
        if since is None or since.at > now - after:
            continue
        context = {**_base(ticket), "pending_since": since.at.isoformat()}
        queued += (
            outbound.queue(
                session,
                "reminder",
                _customers(session, ticket, watchers=False),
                subject=ticket.subject or "",
                context=context,
                ticket_id=ticket.id,
                dedupe_key=f"reminder:{ticket.id}:{since.id}",
                now=now,
            )
            is not None
        )
    return queued


def staff_addresses(session: Session, ticket: TicketRow) -> dict[str, list[str]]:
    """``{"assignee": [...], "team_lead": [...]}``: the assignee's address (the desk's
    ``email``, else an agent id that is an address) and the team's escalation contacts
    (desk.yaml ``escalation_contacts``: addresses, or agent ids with an address)."""
    out: dict[str, list[str]] = {}
    if ticket.assignee:
        address = _agent_address(session, ticket.assignee)
        if address:
            out["assignee"] = [address]
    team = session.scalars(select(Team).where(Team.name == ticket.team)).first() if ticket.team else None
    leads = [
        a
        for a in (_agent_address(session, str(c)) for c in (getattr(team, "escalation_contacts", None) or []))
        if a
    ]
    if leads:
        out["team_lead"] = leads
    return out


def _agent_address(session: Session, ident: str) -> str | None:
    agent = session.get(Agent, ident)
    return outbound.mail_address(getattr(agent, "email", None)) or outbound.mail_address(ident)


def deadline(session: Session, fired: list, now: datetime) -> None:
    """Escalation levels that fired (``clocks.Fired``): a notice to the assignee and team lead."""
    for item in fired:
        ticket = session.get(TicketRow, item.ticket_id)
        if ticket is None:
            continue
        people = staff_addresses(session, ticket)
        context = {
            **_base(ticket),
            "clock": item.clock,
            "level": item.level,
            "level_name": item.name,
            "due_at": item.due_at and item.due_at.isoformat(),
            "breached": bool(item.due_at and item.due_at <= now),
            "assignee": ticket.assignee,
            "notified": sorted(people),
        }
        outbound.queue(
            session,
            "deadline",
            [a for group in people.values() for a in group],
            subject=ticket.subject or "",
            context=context,
            ticket_id=ticket.id,
            dedupe_key=f"deadline:{ticket.id}:{item.clock}:{item.level}",
            now=now,
        )
