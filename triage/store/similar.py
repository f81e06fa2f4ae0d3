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
  index: bounded by the intake rate, not by the number of open tickets. Only the
  new ticket's neighbours among them are clustered (clustering the whole window is
  O(n²) per intake), and their vectors come from a per-process cache (a vector
  never changes once stored), so the read is of ids and times, not blobs.

Intake searches *before* it writes (:func:`search` takes a :class:`Probe`, the new
ticket as it will be stored, without an id yet), so the search never runs while
the write lock is held; :func:`search` is the one call intake makes.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
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
BURST_SIMILARITY = 0.75
BURST_NEIGHBOURS = 200  # at most this many of the window's most similar tickets are clustered
NEW = 0  # the probe's id until the ticket is written (ticket ids start at 1)
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
    session.add(
        TicketVector(
            ticket_id=ticket.id,
            encoder=encoder,
            dim=int(vec.size),
            vector=vec.tobytes(),
            created_at=ticket.created_at,
        )
    )


@dataclass
class Probe:
    """The new ticket as the search sees it: its vector, who asked, when, about what."""

    vector: np.ndarray
    encoder: str
    requester: str | None
    subject: str
    created_at: datetime


@dataclass
class Found:
    """What the search offers: duplicate candidates and a proposed incident (probe id ``NEW``)."""

    duplicates: list[dict[str, Any]] = field(default_factory=list)
    incident: dict[str, Any] | None = None

    def for_ticket(self, ticket_id: int) -> "Found":
        """The same answer with the probe's placeholder id replaced by the stored ticket's."""
        if self.incident is None:
            return self
        swap = lambda i: ticket_id if i == NEW else i  # noqa: E731
        incident = {
            **self.incident,
            "parent": swap(self.incident["parent"]),
            "members": [swap(m) for m in self.incident["members"]],
        }
        return Found(self.duplicates, incident)


def search(session: Session, probe: Probe, config: DuplicateConfig = DuplicateConfig()) -> Found:
    """Duplicate candidates and a burst for a ticket about to be stored (reads only)."""
    vector = np.asarray(probe.vector, dtype=np.float32).ravel()
    since = probe.created_at - (config.window or RETENTION)
    if config.require_same_requester:  # the requester's own tickets: few, read them all
        rows = [
            (i, v, r, t)
            for i, v, r, t, _ in _recent(session, probe.encoder, since, None)
            if v.size == vector.size and r == probe.requester
        ]
    else:
        rows = _nearest(session, vector, probe.encoder, since, probe.created_at, None)
    hits = find_duplicates(vector, probe.requester, probe.created_at, rows, config=config)
    duplicates = [{"ticket_id": int(i), "score": s, "reasons": r} for i, s, r in hits]
    return Found(duplicates, _burst(session, probe, vector))


def _burst(session: Session, probe: Probe, vector: np.ndarray) -> dict[str, Any] | None:
    """The burst the probe would join: clusters among its neighbours of the last 30 minutes."""
    rows = _window(session, probe.encoder, probe.created_at - BURST_WINDOW, vector.size)
    if len(rows) + 1 < BURST_MIN_SIZE:
        return None
    if rows:
        cosine = np.einsum("ij,j->i", np.vstack([r[1] for r in rows]), vector)
        near = np.flatnonzero(cosine >= BURST_SIMILARITY)
        near = near[np.argsort(-cosine[near], kind="stable")[:BURST_NEIGHBOURS]]
        rows = [rows[i] for i in sorted(near)]
    rows.append((NEW, vector, probe.created_at, probe.subject))
    for cluster in detect_burst(
        rows, window=BURST_WINDOW, min_size=BURST_MIN_SIZE, similarity=BURST_SIMILARITY
    ):
        if NEW in cluster.members:
            return {
                "parent": int(cluster.seed),
                "members": [int(m) for m in cluster.members],
                "label": cluster.label,
                "size": cluster.size,
                "cohesion": round(float(cluster.cohesion), 4),
            }
    return None


VECTOR_CACHE_SIZE = 50_000  # per database and encoder: ~75 MB of 384-d float32 at most


class _Recent:
    """Vectors this process has read, by ticket id (a stored vector never changes).

    Ids are reused only after rows are deleted wholesale (a test emptying its
    tables, a restore); then the highest id in the window goes *down*, and the
    cache starts over, as the open-ticket index does.
    """

    def __init__(self) -> None:
        self.vectors: OrderedDict[int, np.ndarray] = OrderedDict()
        self.top = 0
        self.lock = threading.Lock()


_RECENT: "weakref.WeakKeyDictionary[Engine, dict]" = weakref.WeakKeyDictionary()


def _recent_cache(session: Session, encoder: str) -> _Recent:
    engine = session.get_bind()
    engine = getattr(engine, "engine", engine)
    with _INDEXES_LOCK:
        return _RECENT.setdefault(engine, {}).setdefault(encoder, _Recent())


def _window(session: Session, encoder: str, since: datetime, dim: int) -> list[tuple]:
    """``(id, vector, created_at, subject)`` of the open tickets stored since ``since``.

    Ids and times are read; vectors come from this process's cache when it has
    seen them, so a busy window costs a narrow index read, not every blob again.
    """
    stmt = (
        select(TicketVector.ticket_id, TicketVector.created_at, TicketRow.subject)
        .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
        .where(
            TicketVector.encoder == encoder,
            TicketVector.created_at >= since,
            TicketVector.dim == dim,
            TicketRow.status.in_(OPEN_STATUSES),
        )
    )
    listed = list(session.execute(stmt))
    cache = _recent_cache(session, encoder)
    vectors: dict[int, np.ndarray] = {}
    with cache.lock:
        top = max((key for key, _, _ in listed), default=0)
        if top < cache.top:
            cache.vectors.clear()
        cache.top = top
        for key, _, _ in listed:
            hit = cache.vectors.get(key)
            if hit is not None:
                vectors[key] = hit
    missing = [key for key, _, _ in listed if key not in vectors]
    for lo in range(0, len(missing), 900):
        stmt = select(TicketVector.ticket_id, TicketVector.vector).where(
            TicketVector.ticket_id.in_(missing[lo : lo + 900])
        )
        fetched = {key: np.frombuffer(blob, dtype=np.float32) for key, blob in session.execute(stmt)}
        vectors.update(fetched)
        with cache.lock:
            cache.vectors.update(fetched)
            while len(cache.vectors) > VECTOR_CACHE_SIZE:
                cache.vectors.popitem(last=False)
    return [(key, vectors[key], created_at, subject) for key, created_at, subject in listed if key in vectors]


def _recent(session: Session, encoder: str, since: datetime, exclude: int):
    stmt = (
        select(TicketVector, TicketRow.requester, TicketRow.subject)
        .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
        .where(
            TicketVector.encoder == encoder,
            TicketVector.created_at >= since,
            TicketRow.status.in_(OPEN_STATUSES),
            TicketRow.id != exclude,
        )
    )
    for vec, requester, subject in session.execute(stmt):
        yield vec.ticket_id, np.frombuffer(vec.vector, dtype=np.float32), requester, vec.created_at, subject


def offer(
    session: Session, ticket: TicketRow, vector, encoder: str, config: DuplicateConfig = DuplicateConfig()
) -> list[dict[str, Any]]:
    """Open tickets that look like this one, best first (for the agent to merge or not)."""
    since = ticket.created_at - (config.window or RETENTION)
    if config.require_same_requester:  # the requester's own tickets: few, read them all
        rows = [
            (i, v, r, t)
            for i, v, r, t, _ in _recent(session, encoder, since, ticket.id)
            if v.size == np.size(vector) and r == ticket.requester
        ]
    else:
        rows = _nearest(session, vector, encoder, since, ticket.created_at, ticket.id)
    hits = find_duplicates(
        vector, ticket.requester, ticket.created_at, rows, config=config, exclude=ticket.id
    )
    return [{"ticket_id": int(i), "score": s, "reasons": r} for i, s, r in hits]


def burst(
    session: Session,
    ticket: TicketRow,
    vector,
    encoder: str,
    window: timedelta = BURST_WINDOW,
    min_size: int = BURST_MIN_SIZE,
    similarity: float = 0.75,
) -> dict[str, Any] | None:
    """A proposed major incident this ticket belongs to, if similar tickets are piling up."""
    rows = [
        (i, v, t, s)
        for i, v, _, t, s in _recent(session, encoder, ticket.created_at - window, ticket.id)
        if v.size == np.size(vector)
    ]
    rows.append((ticket.id, np.asarray(vector, dtype=np.float32).ravel(), ticket.created_at, ticket.subject))
    for cluster in detect_burst(rows, window=window, min_size=min_size, similarity=similarity):
        if ticket.id in cluster.members:
            return {
                "parent": int(cluster.seed),
                "members": [int(m) for m in cluster.members],
                "label": cluster.label,
                "size": cluster.size,
                "cohesion": round(float(cluster.cohesion), 4),
            }
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
        top = (
            session.execute(
                select(func.max(TicketVector.ticket_id)).where(TicketVector.ticket_id != exclude)
            ).scalar()
            or 0
        )
        if top < self.watermark:
            self.index = ann.VectorIndex(self.index.dim, exact_below=ann.EXACT_BELOW)
            self.watermark = 0
        recent = (
            select(TicketVector.ticket_id)
            .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
            .where(
                TicketVector.ticket_id > self.watermark - CATCH_UP_MARGIN,
                TicketVector.ticket_id != exclude,
                TicketVector.encoder == encoder,
                TicketRow.status.in_(OPEN_STATUSES),
            )
        )
        fresh = [i for (i,) in session.execute(recent) if i not in self.index]
        if fresh:
            self._load(session, encoder, TicketVector.ticket_id.in_(fresh))
        self.watermark = max(self.watermark, int(top))

    def build(self, session: Session, encoder: str, since: datetime, exclude: int) -> None:
        self._load(session, encoder, (TicketVector.created_at >= since) & (TicketVector.ticket_id != exclude))
        self.watermark = int(
            session.execute(
                select(func.max(TicketVector.ticket_id)).where(TicketVector.ticket_id != exclude)
            ).scalar()
            or 0
        )

    def _load(self, session: Session, encoder: str, where) -> None:
        stmt = (
            select(TicketVector.ticket_id, TicketVector.vector)
            .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
            .where(
                where,
                TicketVector.encoder == encoder,
                TicketVector.dim == self.index.dim,
                TicketRow.status.in_(OPEN_STATUSES),
            )
            .execution_options(yield_per=5000)
        )
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


def _open_tickets(
    session: Session, encoder: str, dim: int, at: datetime, exclude: int | None
) -> _OpenTickets:
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
            found.build(session, encoder, at - RETENTION, exclude)
        except BaseException:
            with _INDEXES_LOCK:
                per_engine.pop((encoder, dim), None)
            raise
        finally:
            found.lock.release()
    return found


def _nearest(
    session: Session, vector, encoder: str, since: datetime, at: datetime, exclude: int | None
) -> list[tuple]:
    """``(id, vector, requester, created_at)`` of the open tickets nearest ``vector``."""
    vec = np.asarray(vector, dtype=np.float32).ravel()
    kept = _open_tickets(session, encoder, vec.size, at, exclude)
    with kept.lock:
        kept.catch_up(session, encoder, exclude)
        near = [key for key, _ in kept.index.search(vec, CANDIDATES + 1) if key != exclude]
    if not near:
        return []
    stmt = (
        select(
            TicketVector.ticket_id,
            TicketVector.vector,
            TicketRow.requester,
            TicketVector.created_at,
            TicketRow.status,
        )
        .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
        .where(TicketVector.ticket_id.in_(near), TicketVector.encoder == encoder)
    )
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
