"""The SLA report: are promises kept, for whom, and is it getting worse?

Every SLA clock (first response, resolution) ends in one of three states at the
time of the report: ``met`` (stopped within target), ``breached`` (past target,
stopped or not) or ``open`` (still counting, not yet due). Compliance is
met / (met + breached): an open clock has not kept or broken anything yet.
A *near-breach* is a clock that was not breached but used at least
``near`` (default 80 %) of its target: the misses that almost happened, which
say more about next week than the breaches do.

Compliance is broken down per priority, team and customer tier; breaches and
near-breaches are counted per day (UTC) to show the trend.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from .stats import rate, wilson

NEAR = 0.8
GROUPS = ("priority", "team", "customer_tier")


def outcome(row: Mapping[str, Any], near: float = NEAR) -> tuple[str, bool]:
    """(``met``|``breached``|``open``, near-breach?) of one clock row.

    Row keys: ``state`` (the clock's state now: running/paused/met/breached) and
    ``fraction`` (elapsed / target).
    """
    state = str(row.get("state"))
    if state == "breached":
        return "breached", False
    fraction = float(row.get("fraction") or 0.0)
    return ("met" if state == "met" else "open"), fraction >= near


def event_day(row: Mapping[str, Any], result: str, now: datetime) -> date:
    """The day a clock's fate shows: breach at its due time, else when it stopped (or now)."""
    when = row.get("due_at") if result == "breached" else row.get("stopped_at")
    return (when or now).date() if isinstance(when or now, datetime) else now.date()


def compliance(rows: Iterable[Mapping[str, Any]], by: str, near: float = NEAR) -> list[dict]:
    """Met / breached / open / near-breach counts and compliance per value of ``by``."""
    acc: dict[str, dict[str, int]] = defaultdict(lambda: {"met": 0, "breached": 0, "open": 0, "near": 0})
    for r in rows:
        res, is_near = outcome(r, near)
        key = "—" if r.get(by) in (None, "") else str(r.get(by))
        acc[key][res] += 1
        acc[key]["near"] += int(is_near)
    out = []
    for key in sorted(acc, key=_sort_key):
        c = acc[key]
        decided = c["met"] + c["breached"]
        lo, hi = wilson(c["met"], decided)
        out.append(
            {
                by: key,
                **c,
                "decided": decided,
                "compliance": rate(c["met"], decided),
                "ci_low": lo if decided else None,
                "ci_high": hi if decided else None,
            }
        )
    return out


def _sort_key(value: str) -> tuple:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def daily(rows: Iterable[Mapping[str, Any]], now: datetime, days: int = 30, near: float = NEAR) -> list[dict]:
    """Per UTC day of the last ``days`` (oldest first): met, breaches and near-breaches."""
    start = (now - timedelta(days=days - 1)).date()
    buckets = {start + timedelta(days=i): {"met": 0, "breached": 0, "near": 0} for i in range(days)}
    for r in rows:
        res, is_near = outcome(r, near)
        if res == "open" and not is_near:
            continue
        day = event_day(r, res, now)
        if day in buckets:
            if res in ("met", "breached"):
                buckets[day][res] += 1
            buckets[day]["near"] += int(is_near)
    return [{"day": d.isoformat(), **c} for d, c in sorted(buckets.items())]


def build_report(
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    days: int = 30,
    near: float = NEAR,
    kinds: Sequence[str] | None = None,
) -> dict:
    """Totals, compliance per group, daily trend; per clock kind and overall."""
    kinds = list(kinds or sorted({str(r.get("kind")) for r in rows}))
    sections = {}
    for kind in ["all"] + kinds:
        sub = [r for r in rows if kind == "all" or r.get("kind") == kind]
        total = compliance(({**r, "_": "all"} for r in sub), "_", near)
        sections[kind] = {
            "total": total[0] if total else None,
            **{g: compliance(sub, g, near) for g in GROUPS},
            "daily": daily(sub, now, days, near),
        }
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "days": days,
        "near": near,
        "kinds": kinds,
        "sections": sections,
    }


def rows_from_store(session, since: datetime, now: datetime) -> list[dict]:
    """One row per SLA clock of tickets created since ``since``, evaluated at ``now``."""
    from sqlalchemy import select

    from triage.sla import Clock
    from triage.store.tables import SlaClockRow, TicketRow

    stmt = (
        select(SlaClockRow, TicketRow.priority, TicketRow.team, TicketRow.customer_tier)
        .join(TicketRow, TicketRow.id == SlaClockRow.ticket_id)
        .where(TicketRow.created_at >= since)
    )
    out = []
    for clock_row, priority, team, tier in session.execute(stmt):
        try:
            clock = Clock.from_dict(clock_row.state["clock"])
        except (KeyError, TypeError, ValueError):
            continue  # a clock we cannot read is not evidence either way
        out.append(
            {
                "ticket_id": clock_row.ticket_id,
                "kind": clock_row.kind,
                "priority": priority,
                "team": team,
                "customer_tier": tier,
                "state": clock.state(now),
                "fraction": clock.fraction(now),
                "due_at": clock_row.due_at,
                "stopped_at": clock_row.stopped_at,
            }
        )
    return out
