"""Finding tickets: filters, sorting, paging and full-text search, for queues, pages and the API.

Full text uses the database's own index: SQLite FTS5 (``tickets_fts``, an
external-content table kept in step by triggers) on the embedded store,
PostgreSQL full-text search (a GIN index on the ticket's ``tsvector``) in
production; both created by migration 0008 and stemming English words. A
store built without the migrations (``create_all``) falls back to a ``LIKE``
scan, which is also the reference ``bench/bench_search.py`` measures against.

A query is split into words; every word must match (AND), the last one also as
a prefix (people type "printe"). Nothing the user types reaches the FTS query
syntax unquoted, so ``"``, ``*``, ``NEAR`` or ``-`` are words, never operators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import String, and_, cast, func, or_, select, text
from sqlalchemy.orm import Session

from triage.errors import InputError
from triage.store import tickets
from triage.store.tables import SlaClockRow, TicketRow

SORTS = {
    "priority",
    "-priority",
    "due",
    "-due",
    "created",
    "-created",
    "updated",
    "-updated",
    "id",
    "-id",
    "predicted_priority",
    "-predicted_priority",
}
_WORD = re.compile(r"\w+", re.UNICODE)
_HAS_FTS: dict[int, bool] = {}


# Matches are counted up to this many; beyond it a list says "1,000+" (as web search does):
# an exact count of a very common word's matches costs more than the page itself.
COUNT_CAP = 1000


@dataclass
class Page:
    items: list[TicketRow]
    total: int  # exact up to COUNT_CAP, else COUNT_CAP + 1 with ``exact`` False
    limit: int
    offset: int
    exact: bool = True

    @property
    def next_offset(self) -> int | None:
        if self.offset + self.limit < self.total or (not self.exact and len(self.items) == self.limit):
            return self.offset + self.limit
        return None


def words(query: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(query or "")][:16]


def has_fulltext(session: Session) -> bool:
    """Whether the migrations' full-text index exists here (cached per engine)."""
    engine = session.get_bind()
    key = id(engine)
    if key not in _HAS_FTS:
        if engine.dialect.name == "sqlite":
            found = session.execute(text("SELECT 1 FROM sqlite_master WHERE name='tickets_fts'"))
        else:
            found = session.execute(text("SELECT 1 FROM pg_indexes WHERE indexname='ix_tickets_fulltext'"))
        _HAS_FTS[key] = found.first() is not None
    return _HAS_FTS[key]


def text_filter(session: Session, query: str, *, method: str = "auto"):
    """A WHERE clause matching tickets whose subject or body holds every word of ``query``.

    ``method`` ``like`` forces the scan (the benchmark's reference).
    """
    terms = words(query)
    if not terms:
        return None
    dialect = session.get_bind().dialect.name
    if method == "like" or not has_fulltext(session):
        clauses = []
        for w in terms:
            pattern = "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                or_(
                    func.lower(TicketRow.subject).like(pattern, escape="\\"),
                    func.lower(TicketRow.body).like(pattern, escape="\\"),
                )
            )
        return and_(*clauses)
    if dialect == "sqlite":
        match = " ".join(f'"{w}"' for w in terms[:-1]) + f' "{terms[-1]}"*'
        sub = text("SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH :match").bindparams(
            match=match.strip()
        )
        return TicketRow.id.in_(sub)
    tsquery = (
        " & ".join(f"'{w}'" for w in terms[:-1]) + (" & " if len(terms) > 1 else "") + f"'{terms[-1]}':*"
    )
    # written exactly as the index expression of migration 0008, so the planner uses it
    return text(
        "to_tsvector('english'::regconfig, coalesce(tickets.subject, '') || ' ' || "
        "coalesce(tickets.body, '')) @@ to_tsquery('english'::regconfig, :tsq)"
    ).bindparams(tsq=tsquery)


def find(
    session: Session,
    *,
    q: str | None = None,
    queue: str | None = None,
    status: Iterable[str] | None = None,
    team: str | None = None,
    assignee: str | None = None,
    priority: int | None = None,
    requester: str | None = None,
    visible_to=None,
    sort: str = "priority",
    limit: int = 50,
    offset: int = 0,
    method: str = "auto",
) -> Page:
    """One page of tickets matching every given filter, in ``sort`` order, with the total.

    ``visible_to`` (an ``access.Viewer``) limits the result to what that person may see.
    ``assignee`` ``"none"`` means unassigned.
    """
    if sort not in SORTS:
        raise InputError("unknown sort", column="sort", expected="|".join(sorted(SORTS)), got=sort)
    if not 1 <= int(limit) <= 500 or int(offset) < 0:
        raise InputError(
            "bad paging",
            column="limit",
            expected="limit 1..500, offset >= 0",
            got=f"limit {limit}, offset {offset}",
        )
    conds = []
    if q:
        clause = text_filter(session, q, method=method)
        if clause is not None:
            conds.append(clause)
    if queue:
        conds.append(TicketRow.queue == queue)
    if status:
        conds.append(TicketRow.status.in_(list(status)))
    if team:
        conds.append(TicketRow.team == team)
    if assignee == "none":
        conds.append(TicketRow.assignee.is_(None))
    elif assignee:
        conds.append(TicketRow.assignee == assignee)
    if priority is not None:
        conds.append(TicketRow.priority == int(priority))
    if requester is not None:
        conds.append(TicketRow.requester == requester)
    if visible_to is not None:
        conds.extend(_visibility(visible_to))
    capped = select(TicketRow.id).where(*conds).limit(COUNT_CAP + 1).subquery()
    total = int(session.scalar(select(func.count()).select_from(capped)) or 0)
    stmt = select(TicketRow).where(*conds)
    stmt = _order(stmt, sort)
    rows = list(session.scalars(stmt.limit(int(limit)).offset(int(offset))))
    return Page(rows, total, int(limit), int(offset), exact=total <= COUNT_CAP)


def _visibility(viewer) -> list:
    if viewer.role == "admin":
        return []
    if viewer.role == "requester":
        return [TicketRow.requester == viewer.id]
    teams = list(viewer.teams)
    return [
        or_(
            TicketRow.assignee == viewer.id,
            TicketRow.queue.in_(teams + [tickets.TRIAGE_QUEUE]),
            TicketRow.team.in_(teams),
        )
    ]


def _order(stmt, sort: str):
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    if key == "priority":
        col = TicketRow.priority
        return stmt.order_by(
            TicketRow.escalation_level.desc(), (col.desc() if desc else col.asc()).nulls_last(), TicketRow.id
        )
    if key == "predicted_priority":
        from triage.store.tables import Prediction

        latest = (
            select(func.max(Prediction.id))
            .where(Prediction.ticket_id == TicketRow.id, Prediction.head == "priority")
            .correlate(TicketRow)
            .scalar_subquery()
        )
        label = select(Prediction.label).where(Prediction.id == latest).correlate(TicketRow).scalar_subquery()
        shown = func.coalesce(cast(TicketRow.priority, String), func.substr(label, 2, 1))
        return stmt.order_by((shown.desc() if desc else shown.asc()).nulls_last(), TicketRow.id)
    if key == "due":
        due = (
            select(func.min(SlaClockRow.due_at))
            .where(SlaClockRow.ticket_id == TicketRow.id, SlaClockRow.running.is_(True))
            .correlate(TicketRow)
            .scalar_subquery()
        )
        return stmt.order_by((due.desc() if desc else due.asc()).nulls_last(), TicketRow.id)
    col = {"created": TicketRow.created_at, "updated": TicketRow.updated_at, "id": TicketRow.id}[key]
    return stmt.order_by(col.desc() if desc else col.asc(), TicketRow.id)
