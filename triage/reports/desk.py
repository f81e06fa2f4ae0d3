"""The desk's own performance: the figures a help desk is measured by.

Per team, agent, category and priority (and overall), for tickets created in the
window:

- **first response** and **resolve** times: mean and median hours (wall clock,
  from creation), with the n they are computed on;
- **first-contact resolution** (FCR): of the resolved tickets, the share solved
  with at most one public agent reply and never reopened ("one-touch", as
  Zendesk reports it);
- **reopen rate**: of the tickets resolved at least once, the share reopened;
- **backlog**: tickets still open now, and their age (mean, median, oldest);
- **volume over time**: created and resolved per UTC day;
- **agent load**: open tickets per agent against their capacity.

Every rate carries its n and a Wilson 95 % interval, and a rate on fewer than
``MIN_N`` (30) items is flagged ``small``: a "100 %" on two tickets is not a
finding. :func:`build_report` is a pure function of plain rows so it can be
checked by hand; :func:`rows_from_store` reads them from the ticket store.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from .stats import rate, wilson

MIN_N = 30
GROUPS = ("team", "agent", "category", "priority")
OPEN = ("new", "assigned", "in_progress", "pending")


def hours(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 3600.0


def durations(values: Iterable[float | None]) -> dict[str, Any]:
    xs = sorted(v for v in values if v is not None)
    return {
        "n": len(xs),
        "mean_h": statistics.fmean(xs) if xs else None,
        "median_h": statistics.median(xs) if xs else None,
        "small": len(xs) < MIN_N,
    }


def share(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {
        "k": k,
        "n": n,
        "rate": rate(k, n),
        "ci_low": lo if n else None,
        "ci_high": hi if n else None,
        "small": n < MIN_N,
    }


def figures(rows: Sequence[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """All figures of one group of ticket rows."""
    resolved = [r for r in rows if r.get("resolved_at") is not None]
    ever_resolved = [r for r in rows if r.get("resolved_at") is not None or r.get("reopens")]
    one_touch = [r for r in resolved if (r.get("agent_replies") or 0) <= 1 and not r.get("reopens")]
    backlog = [r for r in rows if r.get("status") in OPEN]
    ages = [hours(r["created_at"], now) for r in backlog]
    return {
        "tickets": len(rows),
        "first_response": durations(hours(r["created_at"], r.get("first_response_at")) for r in rows),
        "resolve": durations(hours(r["created_at"], r.get("resolved_at")) for r in resolved),
        "fcr": share(len(one_touch), len(resolved)),
        "reopen": share(sum(1 for r in ever_resolved if r.get("reopens")), len(ever_resolved)),
        "backlog": {
            "n": len(backlog),
            "mean_age_h": statistics.fmean(ages) if ages else None,
            "median_age_h": statistics.median(ages) if ages else None,
            "max_age_h": max(ages) if ages else None,
        },
    }


def volume(rows: Sequence[Mapping[str, Any]], now: datetime, days: int) -> list[dict]:
    start = (now - timedelta(days=days - 1)).date()
    buckets = {start + timedelta(days=i): {"created": 0, "resolved": 0} for i in range(days)}
    for r in rows:
        for key, when in (("created", r.get("created_at")), ("resolved", r.get("resolved_at"))):
            if when is not None and when.date() in buckets:
                buckets[when.date()][key] += 1
    return [{"day": d.isoformat(), **c} for d, c in sorted(buckets.items())]


def load(agents: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Open tickets per agent against capacity (``load`` = open / capacity)."""
    out = []
    for a in sorted(agents, key=lambda a: str(a["agent"])):
        cap = a.get("capacity") or 0
        out.append({**a, "load": a["open"] / cap if cap else None})
    return out


def build_report(
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    days: int = 30,
    agents: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The whole report from ticket rows (keys: created_at, first_response_at, resolved_at,
    status, team, agent, category, priority, agent_replies, reopens)."""
    by: dict[str, list[dict]] = {}
    for group in GROUPS:
        parts: dict[str, list] = defaultdict(list)
        for r in rows:
            value = r.get(group)
            parts["—" if value in (None, "") else str(value)].append(r)
        by[group] = [{group: key, **figures(parts[key], now)} for key in sorted(parts, key=_key)]
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "days": days,
        "min_n": MIN_N,
        "overall": figures(rows, now),
        "by": by,
        "volume": volume(rows, now, days),
        "agents": load(agents),
    }


def _key(value: str) -> tuple:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def rows_from_store(session, since: datetime) -> tuple[list[dict], list[dict]]:
    """(ticket rows created since ``since``, agent load rows) read from the store."""
    from sqlalchemy import func, select

    from triage.store.tables import Agent, Comment, TicketEvent, TicketRow

    replies = (
        select(Comment.ticket_id, func.count().label("n"))
        .join(TicketRow, TicketRow.id == Comment.ticket_id)
        .where(
            Comment.public.is_(True),
            TicketRow.created_at >= since,
            (TicketRow.requester.is_(None)) | (Comment.author != TicketRow.requester),
        )
        .group_by(Comment.ticket_id)
    )
    reopens = (
        select(TicketEvent.ticket_id, func.count().label("n"))
        .join(TicketRow, TicketRow.id == TicketEvent.ticket_id)
        .where(TicketEvent.field == "reopened", TicketRow.created_at >= since)
        .group_by(TicketEvent.ticket_id)
    )
    n_replies = dict(session.execute(replies).all())
    n_reopens = dict(session.execute(reopens).all())
    rows = []
    for t in session.scalars(select(TicketRow).where(TicketRow.created_at >= since)):
        rows.append(
            {
                "id": t.id,
                "created_at": t.created_at,
                "first_response_at": t.first_response_at,
                "resolved_at": t.resolved_at,
                "status": t.status,
                "team": t.team,
                "agent": t.assignee,
                "category": t.category,
                "priority": t.priority,
                "agent_replies": int(n_replies.get(t.id, 0)),
                "reopens": int(n_reopens.get(t.id, 0)),
            }
        )
    open_by_agent = dict(
        session.execute(
            select(TicketRow.assignee, func.count())
            .where(TicketRow.status.in_(OPEN), TicketRow.assignee.is_not(None))
            .group_by(TicketRow.assignee)
        ).all()
    )
    agents = [
        {
            "agent": a.id,
            "name": a.name,
            "open": int(open_by_agent.get(a.id, 0)),
            "capacity": a.capacity,
            "available": bool(a.available),
        }
        for a in session.scalars(select(Agent).where(Agent.active.is_not(False)))
    ]
    return rows, agents
