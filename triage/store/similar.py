"""Near-duplicates and bursts at intake: the store's side of ``triage.duplicates``.

The maths lives in ``triage.duplicates`` (vectors in, candidates out); this
module keeps each ticket's vector and feeds it candidates. Duplicates are only
*offered* (an agent merges); a burst only *proposes* a major incident (an agent
links the children to a parent).

Where the candidates come from, so that intake costs the same at 1 k and 200 k
open tickets:

* duplicates — a per-process :class:`triage.ann.VectorIndex` over the open tickets'
  vectors (exact below its threshold, HNSW above), built once from
  ``ticket_vectors`` and caught up on every query with the few tickets other
  processes stored since (a primary-key range read). The index only *proposes*
  the nearest ``CANDIDATES``; the database decides: candidates that are closed,
  gone or too old are dropped (and removed from the index), and the rest are
  scored by ``find_duplicates`` on their stored vectors, as before.
* bursts — the tickets of the last 30 minutes, by the ``(encoder, created_at)``
  index: bounded by the intake rate, not by the number of open tickets.
"""
from __future__ import annotations

import json
import threading
import weakref
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from triage import ann
from triage.duplicates import DuplicateConfig, detect_burst, find_duplicates
from triage.store.tables import TicketRow, TicketVector
from triage.store.tickets import OPEN_STATUSES

BURST_WINDOW = timedelta(minutes=30)
BURST_MIN_SIZE = 5
CANDIDATES = 64  # nearest neighbours asked of the index; the database then filters them
RETENTION = timedelta(days=30)  # open tickets older than this are not indexed
# Ticket ids are allocated before commit, so a ticket committed by another process
# may carry an id below one this process has already seen: re-read this many ids
# back on every catch-up (ids only, by primary key) so late commits are not missed.
CATCH_UP_MARGIN = 500


def encoder_name(encoder) -> str:
    """A stable name for the encoder's vector space (vectors of two encoders never mix)."""
    try:
        return json.dumps(encoder.reference(), sort_keys=True)[:200]
    except Exception:  # noqa: BLE001 - an encoder without a reference still gets a name
        return type(encoder).__name__


def remember(session: Session, ticket: TicketRow, vector, encoder: str) -> None:
    vec = np.asarray(vector, dtype=np.float32).ravel()
    session.add(TicketVector(ticket_id=ticket.id, encoder=encoder, dim=int(vec.size),
                             vector=vec.tobytes(), created_at=ticket.created_at))


def _recent(session: Session, encoder: str, since: datetime, exclude: int):
    stmt = (select(TicketVector, TicketRow.requester, TicketRow.subject)
            .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
            .where(TicketVector.encoder == encoder, TicketVector.created_at >= since,
                   TicketRow.status.in_(OPEN_STATUSES), TicketRow.id != exclude))
    for vec, requester, subject in session.execute(stmt):
        yield vec.ticket_id, np.frombuffer(vec.vector, dtype=np.float32), requester, \
            vec.created_at, subject


def offer(session: Session, ticket: TicketRow, vector, encoder: str,
          config: DuplicateConfig = DuplicateConfig()) -> list[dict[str, Any]]:
    """Open tickets that look like this one, best first (for the agent to merge or not)."""
    since = ticket.created_at - (config.window or RETENTION)
    if config.require_same_requester:  # the requester's own tickets: few, read them all
        rows = [(i, v, r, t) for i, v, r, t, _ in _recent(session, encoder, since, ticket.id)
                if v.size == np.size(vector) and r == ticket.requester]
    else:
        rows = _nearest(session, vector, encoder, since, ticket)
    hits = find_duplicates(vector, ticket.requester, ticket.created_at, rows, config=config,
                           exclude=ticket.id)
    return [{"ticket_id": int(i), "score": s, "reasons": r} for i, s, r in hits]


def burst(session: Session, ticket: TicketRow, vector, encoder: str,
          window: timedelta = BURST_WINDOW, min_size: int = BURST_MIN_SIZE,
          similarity: float = 0.75) -> dict[str, Any] | None:
    """A proposed major incident this ticket belongs to, if similar tickets are piling up."""
    rows = [(i, v, t, s) for i, v, _, t, s in _recent(session, encoder,
                                                       ticket.created_at - window, ticket.id)
            if v.size == np.size(vector)]
    rows.append((ticket.id, np.asarray(vector, dtype=np.float32).ravel(), ticket.created_at,
                 ticket.subject))
    for cluster in detect_burst(rows, window=window, min_size=min_size, similarity=similarity):
        if ticket.id in cluster.members:
            return {"parent": int(cluster.seed), "members": [int(m) for m in cluster.members],
                    "label": cluster.label, "size": cluster.size,
                    "cohesion": round(float(cluster.cohesion), 4)}
    return None


# ------------------------------------------------------------------ the open-ticket index
class _OpenTickets:
    """One process's nearest-neighbour index over one database's open tickets of one encoder."""

    def __init__(self, dim: int) -> None:
        self.index = ann.VectorIndex(dim, exact_below=ann.EXACT_BELOW)
        self.watermark = 0  # highest ticket id read so far
        self.lock = threading.Lock()

    def catch_up(self, session: Session, encoder: str, exclude: int | None = None) -> None:
        """Add the tickets stored (by any process) since the last look.

        ``exclude`` is the ticket being taken in: its row is not committed yet, and a
        rolled-back id may be handed out again (SQLite), so it joins the index on a
        later look, once it is really there. If the highest id went *down*, rows were
        deleted wholesale (a test emptying its database, a restore): start over.
        """
        top = session.execute(select(func.max(TicketVector.ticket_id))
                              .where(TicketVector.ticket_id != exclude)).scalar() or 0
        if top < self.watermark:
            self.index = ann.VectorIndex(self.index.dim, exact_below=ann.EXACT_BELOW)
            self.watermark = 0
        recent = (select(TicketVector.ticket_id)
                  .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
                  .where(TicketVector.ticket_id > self.watermark - CATCH_UP_MARGIN,
                         TicketVector.ticket_id != exclude, TicketVector.encoder == encoder,
                         TicketRow.status.in_(OPEN_STATUSES)))
        fresh = [i for (i,) in session.execute(recent) if i not in self.index]
        if fresh:
            self._load(session, encoder, TicketVector.ticket_id.in_(fresh))
        self.watermark = max(self.watermark, int(top))

    def build(self, session: Session, encoder: str, since: datetime, exclude: int) -> None:
        self._load(session, encoder, (TicketVector.created_at >= since)
                   & (TicketVector.ticket_id != exclude))
        self.watermark = int(session.execute(
            select(func.max(TicketVector.ticket_id))
            .where(TicketVector.ticket_id != exclude)).scalar() or 0)

    def _load(self, session: Session, encoder: str, where) -> None:
        stmt = (select(TicketVector.ticket_id, TicketVector.vector)
                .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
                .where(where, TicketVector.encoder == encoder,
                       TicketVector.dim == self.index.dim,
                       TicketRow.status.in_(OPEN_STATUSES))
                .execution_options(yield_per=5000))
        keys: list[int] = []
        vecs: list[np.ndarray] = []
        for key, blob in session.execute(stmt):
            keys.append(key)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
            if len(keys) == 5000:
                self.index.add(keys, np.vstack(vecs))
                keys, vecs = [], []
        if keys:
            self.index.add(keys, np.vstack(vecs))


_INDEXES: "weakref.WeakKeyDictionary[Engine, dict]" = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def _open_tickets(session: Session, encoder: str, dim: int, ticket: TicketRow) -> _OpenTickets:
    """This process's index for the session's database, built on first use."""
    engine = session.get_bind()
    engine = getattr(engine, "engine", engine)
    with _INDEXES_LOCK:
        per_engine = _INDEXES.setdefault(engine, {})
        found = per_engine.get((encoder, dim))
        if found is None:
            found = per_engine[(encoder, dim)] = _OpenTickets(dim)
            found.lock.acquire()  # built below, outside the registry lock
            fresh = True
        else:
            fresh = False
    if fresh:
        try:
            found.build(session, encoder, ticket.created_at - RETENTION, ticket.id)
        except BaseException:
            with _INDEXES_LOCK:
                per_engine.pop((encoder, dim), None)
            raise
        finally:
            found.lock.release()
    return found


def _nearest(session: Session, vector, encoder: str, since: datetime,
             ticket: TicketRow) -> list[tuple]:
    """``(id, vector, requester, created_at)`` of the open tickets nearest ``vector``."""
    vec = np.asarray(vector, dtype=np.float32).ravel()
    kept = _open_tickets(session, encoder, vec.size, ticket)
    with kept.lock:
        kept.catch_up(session, encoder, ticket.id)
        near = [key for key, _ in kept.index.search(vec, CANDIDATES + 1) if key != ticket.id]
    if not near:
        return []
    stmt = (select(TicketVector.ticket_id, TicketVector.vector, TicketRow.requester,
                   TicketVector.created_at, TicketRow.status)
            .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
            .where(TicketVector.ticket_id.in_(near), TicketVector.encoder == encoder))
    rows, gone = [], set(near)
    for key, blob, requester, created_at, status in session.execute(stmt):
        if status not in OPEN_STATUSES:
            continue  # closed since it was indexed: dropped below
        gone.discard(key)
        if created_at >= since:
            rows.append((key, np.frombuffer(blob, dtype=np.float32), requester, created_at))
    if gone:  # closed, merged or never committed: the index stops proposing them
        with kept.lock:
            kept.index.remove(gone)
    return rows
