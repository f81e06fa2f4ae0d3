"""Duplicates and major incidents, on the storage side.

Merging a duplicate moves its follow-ups and watchers to the parent and
closes it as ``duplicate``. Everything the merge changed is written into the
``links`` row (which comments and watchers moved, what the child's status
was), so :func:`unmerge` restores exactly that and nothing the parent gained
since. Incident links only connect tickets; resolving the parent can resolve
its open children (:func:`resolve_children`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from triage.errors import TransitionError
from triage.store import clocks, tickets
from triage.store.tables import Comment, Link, TicketRow, Watcher, utcnow

DUPLICATE_OF = "duplicate_of"
PARENT_INCIDENT = "parent_incident"
LINK_KINDS = (DUPLICATE_OF, PARENT_INCIDENT)


def active_link(session: Session, ticket_id: int, kind: str) -> Link | None:
    stmt = (
        select(Link)
        .where(Link.ticket_id == ticket_id, Link.kind == kind, Link.undone_at.is_(None))
        .order_by(Link.id.desc())
    )
    return session.scalars(stmt).first()


def merge(
    session: Session, child_id: int, parent_id: int, *, actor: str, now: datetime | None = None
) -> Link:
    """Merge ``child`` into ``parent``; refused for self, chains and closed parents."""
    now = now or utcnow()
    if int(child_id) == int(parent_id):
        raise TransitionError("a ticket cannot be merged into itself", ticket=child_id)
    first, second = sorted([int(child_id), int(parent_id)])  # lock order: lowest id first
    locked = {first: tickets.get(session, first, lock=True), second: tickets.get(session, second, lock=True)}
    child, parent = locked[int(child_id)], locked[int(parent_id)]
    if active_link(session, child.id, DUPLICATE_OF):
        raise TransitionError(f"ticket {child.id} is already merged", ticket=child.id)
    if active_link(session, parent.id, DUPLICATE_OF) or parent.status == "closed":
        raise TransitionError(
            f"ticket {parent.id} is closed or merged itself: merge into an open ticket", ticket=parent.id
        )
    data = {
        "comments": _move_comments(session, child, parent),
        "watchers": _move_watchers(session, child, parent),
        "status": child.status,
        "resolution": child.resolution,
        "resolved_at": child.resolved_at and child.resolved_at.isoformat(),
        "closed_at": child.closed_at and child.closed_at.isoformat(),
    }
    if child.requester and tickets.add_watcher(session, parent, child.requester):
        data["requester_watcher"] = child.requester
    data["clocks"] = _close_as_duplicate(session, child, actor, now)
    link = Link(
        ticket_id=child.id,
        target_id=parent.id,
        kind=DUPLICATE_OF,
        data=data,
        created_by=actor,
        created_at=now,
    )
    session.add(link)
    tickets.record(session, child, "merged_into", None, parent.id, actor, now)
    tickets.record(session, parent, "merged", None, child.id, actor, now)
    session.flush()
    return link


def _move_comments(session: Session, child: TicketRow, parent: TicketRow) -> list[int]:
    ids = list(session.scalars(select(Comment.id).where(Comment.ticket_id == child.id)))
    if ids:
        session.execute(
            update(Comment)
            .where(Comment.id.in_(ids))
            .values(ticket_id=parent.id, moved_from=child.id)
            .execution_options(synchronize_session=False)
        )
    return ids


def _move_watchers(session: Session, child: TicketRow, parent: TicketRow) -> list[str]:
    """Move the child's watchers the parent lacks; the others stay (nothing to undo)."""
    have = set(tickets.watchers(session, parent.id))
    moved = []
    for watcher in session.scalars(select(Watcher).where(Watcher.ticket_id == child.id)):
        if watcher.address not in have:
            watcher.ticket_id, watcher.moved_from = parent.id, child.id
            moved.append(watcher.address)
    return moved


def _close_as_duplicate(session: Session, child: TicketRow, actor: str, now: datetime) -> list[str]:
    """Closing a duplicate is not a lifecycle move (no mandatory fields): recorded as one."""
    old = child.status
    child.status, child.resolution = "closed", "duplicate"
    child.closed_at = now
    child.resolved_at = child.resolved_at or now
    child.updated_at = now
    tickets.record(session, child, "status", old, "closed", actor, now)
    tickets.record(session, child, "resolution", None, "duplicate", actor, now)
    running = clocks.running_kinds(session, child)
    for kind in running:
        clocks.stop(session, child, kind, now)
    return running


def unmerge(session: Session, child_id: int, *, actor: str, now: datetime | None = None) -> Link:
    """Undo the last merge of ``child``: its comments, watchers and status come back."""
    now = now or utcnow()
    link = active_link(session, int(child_id), DUPLICATE_OF)
    if link is None:
        raise TransitionError(f"ticket {child_id} is not merged", ticket=child_id)
    child = tickets.get(session, link.ticket_id, lock=True)
    parent = tickets.get(session, link.target_id, lock=True)
    data: dict[str, Any] = dict(link.data)
    if data.get("comments"):
        session.execute(
            update(Comment)
            .where(Comment.id.in_(data["comments"]), Comment.moved_from == child.id)
            .values(ticket_id=child.id, moved_from=None)
            .execution_options(synchronize_session=False)
        )
    for watcher in session.scalars(
        select(Watcher).where(Watcher.ticket_id == parent.id, Watcher.moved_from == child.id)
    ):
        watcher.ticket_id, watcher.moved_from = child.id, None
    if data.get("requester_watcher"):
        session.execute(
            Watcher.__table__.delete().where(
                Watcher.ticket_id == parent.id, Watcher.address == data["requester_watcher"]
            )
        )
    _restore_status(session, child, data, actor, now)
    link.undone_at = now
    tickets.record(session, child, "merged_into", parent.id, None, actor, now)
    tickets.record(session, parent, "merged", child.id, None, actor, now)
    session.flush()
    return link


def _restore_status(session: Session, child: TicketRow, data: dict, actor: str, now: datetime) -> None:
    parse = lambda s: datetime.fromisoformat(s) if s else None  # noqa: E731
    tickets.record(session, child, "status", child.status, data["status"], actor, now)
    tickets.record(session, child, "resolution", child.resolution, data.get("resolution"), actor, now)
    child.status, child.resolution = data["status"], data.get("resolution")
    child.resolved_at, child.closed_at = parse(data.get("resolved_at")), parse(data.get("closed_at"))
    child.updated_at = now
    for kind in data.get("clocks", []):  # the time spent merged counts as a pause
        clocks.restart(session, child, kind, now)


def link_incident(
    session: Session, child_id: int, parent_id: int, *, actor: str, now: datetime | None = None
) -> Link:
    """Attach a ticket to a parent (major) incident; relinking moves it."""
    now = now or utcnow()
    if int(child_id) == int(parent_id):
        raise TransitionError("a ticket cannot be its own parent incident", ticket=child_id)
    child, parent = tickets.get(session, child_id), tickets.get(session, parent_id)
    if active_link(session, parent.id, PARENT_INCIDENT):
        raise TransitionError(f"ticket {parent.id} is itself a child incident", ticket=parent.id)
    old = active_link(session, child.id, PARENT_INCIDENT)
    if old is not None:
        if old.target_id == parent.id:
            return old
        old.undone_at = now
    link = Link(
        ticket_id=child.id,
        target_id=parent.id,
        kind=PARENT_INCIDENT,
        data={},
        created_by=actor,
        created_at=now,
    )
    session.add(link)
    tickets.record(session, child, "parent_incident", old and old.target_id, parent.id, actor, now)
    session.flush()
    return link


def unlink_incident(session: Session, child_id: int, *, actor: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    link = active_link(session, int(child_id), PARENT_INCIDENT)
    if link is None:
        raise TransitionError(f"ticket {child_id} has no parent incident", ticket=child_id)
    link.undone_at = now
    tickets.record(
        session, tickets.get(session, child_id), "parent_incident", link.target_id, None, actor, now
    )


def children(session: Session, parent_id: int, kind: str = PARENT_INCIDENT) -> list[TicketRow]:
    stmt = (
        select(TicketRow)
        .join(Link, Link.ticket_id == TicketRow.id)
        .where(Link.target_id == parent_id, Link.kind == kind, Link.undone_at.is_(None))
        .order_by(TicketRow.id)
    )
    return list(session.scalars(stmt))


def resolve_children(
    session: Session, parent: TicketRow, *, actor: str, now: datetime | None = None
) -> dict[str, list[int]]:
    """Resolve the parent's open children; ones that cannot move yet are reported, not forced."""
    now = now or utcnow()
    done, skipped = [], []
    for child in children(session, parent.id):
        if child.status not in tickets.OPEN_STATUSES:
            continue
        try:
            with session.begin_nested():
                tickets.transition(
                    session,
                    child,
                    "resolved",
                    actor=actor,
                    now=now,
                    resolution=f"parent_resolved:{parent.id}",
                )
            done.append(child.id)
        except TransitionError:
            skipped.append(child.id)
    return {"resolved": done, "skipped": skipped}


def links_of(session: Session, ticket_id: int) -> list[dict[str, Any]]:
    stmt = select(Link).where((Link.ticket_id == ticket_id) | (Link.target_id == ticket_id)).order_by(Link.id)
    return [
        {
            "id": k.id,
            "ticket_id": k.ticket_id,
            "target_id": k.target_id,
            "kind": k.kind,
            "created_by": k.created_by,
            "created_at": k.created_at.isoformat(),
            "undone_at": k.undone_at and k.undone_at.isoformat(),
        }
        for k in session.scalars(stmt)
    ]
