"""Near-duplicates and bursts at intake: the store's side of ``triage.duplicates``.

The maths lives in ``triage.duplicates`` (vectors in, candidates out); this
module keeps each ticket's vector and feeds it candidates. Duplicates are only
*offered* (an agent merges); a burst only *proposes* a major incident (an agent
links the children to a parent).

Where the candidates come from, so that intake costs the same at 1 k and 200 k
open tickets:

* duplicates — a per-process :class:`triage.ann.VectorIndex` over the open tickets'
  vectors (exact below its threshold, faiss IVF above), loaded from
  ``ticket_vectors`` in a background thread (intake meanwhile scans what is not
  loaded yet: same answer, no wait) and caught up on every query with the few
  tickets other processes stored or reopened since (primary-key range reads of
  ``ticket_vectors`` and ``ticket_events``). The index only *proposes*
  the nearest ``CANDIDATES``; the database decides: candidates that are closed,
  gone or too old are dropped (and removed from the index), and the rest are
  scored by ``find_duplicates`` on their stored vectors, as before.
* bursts — the tickets of the last 30 minutes. Each process keeps them in memory
  beside its open-ticket index (:class:`_Window`: ids, times, vectors), fed by the
  same load and catch-ups, so an intake reads only its neighbours' status and
  subject (by primary key), not the window: that read grew with the intake rate
  (at 150/s, 270 k tickets in 30 minutes). Until the index is loaded, or for a
  probe dated before what the window holds, the window is read by the
  ``(encoder, created_at)`` index as before (:func:`_window`; vectors from a
  per-process cache). Only the new ticket's neighbours are clustered (clustering
  the whole window is O(n²) per intake).

Intake searches *before* it writes (:func:`search` takes a :class:`Probe`, the new
ticket as it will be stored, without an id yet), so the search never runs while
the write lock is held; :func:`search` is the one call intake makes.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import numpy as np
from sqlalchemy import and_, bindparam, func, insert, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from triage import ann
from triage.duplicates import DuplicateConfig, detect_burst, find_duplicates
from triage.store import event_log
from triage.store.read_only import read_options
from triage.store.tables import ID_MAX, TicketEvent, TicketRow, TicketVector
from triage.store.tickets import OPEN_STATUSES

log = logging.getLogger(__name__)

BURST_WINDOW = timedelta(minutes=30)
BURST_MIN_SIZE = 5
BURST_SIMILARITY = 0.75
BURST_NEIGHBOURS = 200  # at most this many of the window's most similar tickets are clustered
# at most this many of the window's newest open tickets are read per intake: a burst is
# judged on them (the newest 2,000 of the last 30 minutes), so the read stays bounded
# when the intake rate is high (at 150/s the window holds 270 k tickets)
BURST_ROWS = 2_000
NEW = 0  # the probe's id until the ticket is written (ticket ids start at 1)
CANDIDATES = 64  # nearest neighbours asked of the index; the database then filters them
# The open-ticket index scans exactly below EXACT_BELOW vectors and is faiss IVF above, with
# short lists (INDEX_PER_LIST) rebuilt each time the set doubles, so that a query reads about
# the same number of vectors (2,000-4,000: nprobe 16 lists of 125-250) at 2 k and at 60 k open
# tickets, and an intake costs the same early and late in a busy hour. Before (round 7, drift):
# exact below 5,000, then 16 lists of 500 probed 16 at a time (every vector) until a rebuild
# at 4x (20 k): the query read every open ticket up to 20 k, 0.25 ms at 1 k -> 1.0 ms at 16 k,
# which a desk taking 130 intakes/s reaches within two minutes. Past MAX_LISTS lists (64 k)
# the lists grow instead (k-means' cost grows with lists x sample): 6,000 read at 200 k.
# (``ann.EXACT_BELOW``, 20 k, and its 500 per list stay the KB's.)
EXACT_BELOW = 2_000
INDEX_PER_LIST = 125
INDEX_REBUILD_GROWTH = 2
INDEX_MAX_LISTS = 512


def new_index(dim: int) -> ann.VectorIndex:
    """An open-ticket index as each process keeps one (see EXACT_BELOW)."""
    return ann.VectorIndex(
        dim,
        exact_below=EXACT_BELOW,
        per_list=INDEX_PER_LIST,
        rebuild_growth=INDEX_REBUILD_GROWTH,
        max_lists=INDEX_MAX_LISTS,
    )


RETENTION = timedelta(days=30)  # open tickets older than this are not indexed
# Ticket ids are allocated before commit, so a ticket committed by another process
# may carry an id below one this process has already seen: the ids missing within
# this many of the highest one read (gaps) are asked for again on every catch-up
# (by primary key), so late commits are not missed.
CATCH_UP_MARGIN = 500


def encoder_name(encoder) -> str:
    """A stable name for the encoder's vector space (vectors of two encoders never mix)."""
    try:
        return json.dumps(encoder.reference(), sort_keys=True)[:200]
    except Exception:  # noqa: BLE001 - an encoder without a reference still gets a name
        return type(encoder).__name__


def remember(session: Session, ticket: TicketRow, vector, encoder: str) -> None:
    """Keep the ticket's vector: a row nobody reads back in the unit of work, so in a batch
    (intake's) it goes in with the batch's rows (one statement for a group; on PostgreSQL in
    their round trip), not as an ORM object flushed on its own with ``RETURNING id``."""
    vec = np.asarray(vector, dtype=np.float32).ravel()
    row = {
        "ticket_id": ticket.id,
        "encoder": encoder,
        "dim": int(vec.size),
        "vector": vec.tobytes(),
        "created_at": ticket.created_at,
    }
    event_log.write_later(session, _INSERT_VECTOR, [row])


_INSERT_VECTOR = insert(TicketVector.__table__)  # built once: its compiled form stays cached


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
    _CAUGHT_UP.__dict__.pop("session", None)  # set again by this search's catch-up, if it makes one
    vector = np.asarray(probe.vector, dtype=np.float32).ravel()
    since = probe.created_at - (config.window or RETENTION)
    if config.require_same_requester:  # the requester's own tickets: few, read them all
        rows = [
            (i, v, r, t)
            for i, v, r, t, _ in _recent(session, probe.encoder, since, None)
            if v.size == vector.size and r == probe.requester
        ]
    else:
        rows = _nearest(
            session, vector, probe.encoder, since, probe.created_at, None, floor=_floor(vector, config)
        )
    hits = find_duplicates(vector, probe.requester, probe.created_at, rows, config=config)
    duplicates = [{"ticket_id": int(i), "score": s, "reasons": r} for i, s, r in hits]
    return Found(duplicates, _burst(session, probe, vector))


def _burst(session: Session, probe: Probe, vector: np.ndarray) -> dict[str, Any] | None:
    """The burst the probe would join: clusters among its neighbours of the last 30 minutes."""
    since = probe.created_at - BURST_WINDOW
    rows = _window_in_memory(session, probe.encoder, since, vector)
    if rows is None:  # no caught-up window in this process yet: read it
        rows = _window(session, probe.encoder, since, vector.size)
        if len(rows) + 1 < BURST_MIN_SIZE:
            return None
        rows = [rows[i] for i in _near(np.vstack([r[1] for r in rows]) if rows else None, vector)]
    if len(rows) + 1 < BURST_MIN_SIZE:
        return None  # a burst joined by the probe is among its neighbours and the probe
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


def _near(vectors: np.ndarray | None, vector: np.ndarray) -> list[int]:
    """Positions of the ``BURST_NEIGHBOURS`` rows most similar to ``vector`` (cosine at
    least ``BURST_SIMILARITY``), in their original order."""
    if vectors is None or not len(vectors):
        return []
    return _near_cosines(vectors @ vector, np.arange(len(vectors))).tolist()


def _near_cosines(cosines: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` (positions into ``cosines``, in their order) :func:`_near` keeps:
    indices into ``rows``, ascending."""
    cosine = cosines[rows]
    near = np.flatnonzero(cosine >= BURST_SIMILARITY)
    return np.sort(near[np.argsort(-cosine[near], kind="stable")[:BURST_NEIGHBOURS]])


def _window_in_memory(
    session: Session, encoder: str, since: datetime, vector: np.ndarray
) -> list[tuple] | None:
    """The probe's neighbours in this process's window (``_window``'s rows, neighbours only),
    or None when the window cannot answer: no caught-up index for this encoder yet (it
    loads), or the query reaches before what the window holds.

    The window answers from memory what ``_window`` reads; only the neighbours' status
    and subject are read, by primary key (a ticket closed since is dropped, as the
    query would; its vector stays, for a reopen)."""
    with _INDEXES_LOCK:
        kept = _INDEXES.get(_engine(session), {}).get((encoder, vector.size))
    # only right after this search's own catch-up (_candidates, on this thread and session):
    # then the window holds what the query would read now
    caught = _CAUGHT_UP.__dict__.pop("session", None)
    if kept is None or caught is None or caught() is not session:
        return None
    with kept.lock:
        found = kept.window.near(since, vector)
    if found is None:
        return None
    if len(found) + 1 < BURST_MIN_SIZE:
        return []  # no burst: the status read is not needed
    keys = [key for key, _, _ in found]
    now = {key: (status, subject) for key, status, subject in _core(session).execute(_STATUS, {"keys": keys})}
    if len(now) < len(found):  # rolled back since it was read: never a member
        with kept.lock:
            kept.window.forget(key for key, _, _ in found if key not in now)
    return [
        (key, vec, created_at, now[key][1])
        for key, vec, created_at in found
        if key in now and now[key][0] in OPEN_STATUSES
    ]


class _Window:
    """The burst window in memory: the newest stored tickets' ids, times and vectors.

    Filled as the open-ticket index is (its load, then every catch-up), so it holds what
    ``_window`` would read from the database, without reading it on every intake: the
    read grew with the intake rate (every ticket of the last 30 minutes, per intake).

    It is complete from ``floor`` on (every ticket stored at or after it is held), and
    holds at most ``WINDOW_KEEP`` rows: a trim keeps the newest ``2 * BURST_ROWS``. The
    query reads the newest ``BURST_ROWS`` since ``since``; those are held when ``since``
    is at or after ``floor``, or when at least ``BURST_ROWS`` held tickets are from
    ``floor`` on (the newest ``BURST_ROWS`` are then all among them). Otherwise
    :meth:`near` says None and the caller reads. A ticket is judged on its status when it
    is a neighbour (a closed one is not dropped here: it may be reopened), so among the
    newest ``BURST_ROWS`` a closed ticket takes a place the query would give to an older
    open one.

    Rows are kept in arrival order (appends, no copy of the vectors) beside ``order``,
    their positions sorted by ``(time, id)`` as the query orders them, kept sorted on
    each add (a few insertions into an int array): a search costs ``BURST_ROWS``
    cosines, whatever the window holds.
    """

    def __init__(self, dim: int, floor: int) -> None:
        self.dim = dim
        self.floor = floor  # microseconds since the epoch: held complete from here on
        self.keys = np.zeros(0, dtype=np.int64)
        self.times = np.zeros(0, dtype=np.int64)  # microseconds: exact ties and order, as the query's
        self.stamps: list[datetime] = []
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self.size = 0
        self.held: set[int] = set()
        self.order = np.zeros(0, dtype=np.int64)  # positions, by (time, id)
        self.sorted_times = np.zeros(0, dtype=np.int64)  # times[order]

    def add(self, keys: list[int], stamps: list[datetime], vectors: np.ndarray) -> None:
        fresh = [  # what no query can reach (before ``floor``) is not kept
            i
            for i, key in enumerate(keys)
            if key not in self.held and stamps[i] is not None and _micros(stamps[i]) >= self.floor
        ]
        if not fresh:
            return
        fresh.sort(key=lambda i: (_micros(stamps[i]), keys[i]))  # inserted in the query's order
        n, need = self.size, self.size + len(fresh)
        if need > len(self.keys):  # amortised growth
            grow = max(need, 2 * len(self.keys), 256)
            self.keys = np.resize(self.keys, grow)
            self.times = np.resize(self.times, grow)
            vectors_grown = np.zeros((grow, self.dim), dtype=np.float32)
            vectors_grown[:n] = self.vectors[:n]
            self.vectors = vectors_grown
        at = []
        for j, i in enumerate(fresh):
            when = _micros(stamps[i])
            self.keys[n + j] = keys[i]
            self.times[n + j] = when
            self.vectors[n + j] = vectors[i]
            self.stamps.append(stamps[i])
            self.held.add(int(keys[i]))
            at.append(self._place(when, int(keys[i])))
        self.order = np.insert(self.order, at, np.arange(n, need))
        self.sorted_times = np.insert(self.sorted_times, at, self.times[n:need])
        self.size = need
        if self.size > WINDOW_KEEP:
            self._trim()

    def _place(self, when: int, key: int) -> int:
        """Where ``(when, key)`` goes in ``order`` (before the rows inserted in this add)."""
        lo = int(np.searchsorted(self.sorted_times, when, side="left"))
        hi = int(np.searchsorted(self.sorted_times, when, side="right"))
        while hi > lo and self.keys[self.order[hi - 1]] > key:  # ties of time: by id (rare)
            hi -= 1
        return hi

    def _trim(self) -> None:
        """Keep the newest ``2 * BURST_ROWS``; what is dropped raises ``floor``."""
        cut = self.size - 2 * BURST_ROWS
        if cut <= 0:
            return
        self.floor = max(self.floor, int(self.sorted_times[cut - 1]) + 1)
        self._keep(np.sort(self.order[cut:]))

    def _keep(self, keep: np.ndarray) -> None:
        """Hold only the rows at positions ``keep`` (ascending), compacted in arrival order."""
        self.held.difference_update(self.keys[np.setdiff1d(np.arange(self.size), keep)].tolist())
        self.keys[: len(keep)] = self.keys[keep]
        self.times[: len(keep)] = self.times[keep]
        self.vectors[: len(keep)] = self.vectors[keep]
        self.stamps = [self.stamps[i] for i in keep.tolist()]
        self.size = len(keep)
        self.order = np.lexsort((self.keys[: self.size], self.times[: self.size]))
        self.sorted_times = self.times[self.order]

    def forget(self, keys) -> None:
        """Rows that are not in the database (rolled back): they never join a burst."""
        gone = set(int(k) for k in keys) & self.held
        if not gone:
            return
        self._keep(np.flatnonzero(~np.isin(self.keys[: self.size], list(gone))))

    def near(self, since: datetime, vector: np.ndarray) -> list[tuple[int, np.ndarray, datetime]] | None:
        """``(id, vector, created_at)`` of the probe's neighbours among the newest
        ``BURST_ROWS`` held since ``since``, oldest first; None when those may not all be
        held (``since`` before ``floor``, with fewer than ``BURST_ROWS`` held from it on)."""
        start = _micros(since)
        if start < self.floor:
            complete = self.size - int(np.searchsorted(self.sorted_times, self.floor, side="left"))
            if complete < BURST_ROWS:
                return None
        first = max(int(np.searchsorted(self.sorted_times, start, side="left")), self.size - BURST_ROWS)
        rows = self.order[first:]  # the newest BURST_ROWS since ``since``, oldest first
        if not len(rows):
            return []
        low = int(rows.min())  # one product over a contiguous block of the arrival order (no copy)
        picked = rows[_near_cosines(self.vectors[low : self.size] @ vector, rows - low)]
        return [(int(self.keys[i]), self.vectors[i].copy(), self.stamps[i]) for i in picked.tolist()]


WINDOW_KEEP = 4 * BURST_ROWS  # rows held before a trim (down to the newest 2 * BURST_ROWS)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


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
    engine = _engine(session)
    with _INDEXES_LOCK:
        return _RECENT.setdefault(engine, {}).setdefault(encoder, _Recent())


def _window(session: Session, encoder: str, since: datetime, dim: int) -> list[tuple]:
    """``(id, vector, created_at, subject)`` of the newest ``BURST_ROWS`` open tickets
    stored since ``since``, oldest first.

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
        .order_by(TicketVector.created_at.desc(), TicketVector.ticket_id.desc())
        .limit(BURST_ROWS)  # the newest, read backwards along the (encoder, created_at) index
    )
    listed = list(session.execute(stmt))[::-1]  # oldest first, as the clustering expects
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
LOAD_CHUNK = 5_000  # vectors read per round trip while an index is loaded
EVENT_MARGIN = 2_000  # event-id gaps asked for again (their ids, too, are allocated early)


class _OpenTickets:
    """One process's nearest-neighbour index over one database's open tickets of one encoder.

    It is loaded in a background thread, in ``(created_at, id)`` order (the window
    index's own order: a range read, whatever the history's size), so the intake that
    created it does not wait: while ``loaded`` is not ``None`` the index holds every
    open ticket up to that id, and :func:`_nearest` scans the rest (a primary-key
    range) exactly, so the answer is the same as with the full index. Once loaded,
    ``catch_up`` adds what other processes stored (and reopened) since.
    """

    def __init__(self, dim: int, at: datetime) -> None:
        self.index = new_index(dim)
        self.watermark = 0  # highest ticket id read so far
        self.events = 0  # highest ticket_events id read so far (reopened tickets)
        # ids within the margin below a watermark not seen yet (None: the whole margin, first look)
        self.gaps: set[int] | None = None
        self.event_gaps: set[int] | None = None
        # while loading: the index holds every ticket up to this (created_at, id); None once loaded
        self.loaded: Position | None = START
        self.top = 0  # the highest ticket id when the load began
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.stopped = False  # set by forget(): the load stops between chunks
        # the burst window (in memory, fed by the load and the catch-ups as the index is);
        # complete from ``at - BURST_WINDOW`` (the first query's window) on
        self.window = _Window(dim, _micros(at - BURST_WINDOW))

    @property
    def loading(self) -> bool:
        return self.loaded is not None

    def load(self, engine: Engine, encoder: str, since: datetime, exclude: int | None) -> None:
        """Read the open tickets' vectors into the index, oldest first (a background thread)."""
        try:
            with _reading(engine) as session:
                top = self.top = _top(session, exclude)
                self.events = _top_event(session)
            after = START
            with self.index.bulk():  # the approximate index is built once, from all of them
                while not self.stopped:
                    with _reading(engine) as session:  # one short read each: no snapshot held for minutes
                        keys, vecs, last, stamps = _read_chunk(
                            session, encoder, self.index.dim, since, after, exclude
                        )
                    with self.lock:
                        if keys:
                            self.index.add(keys, vecs)
                            self.window.add(keys, stamps, vecs)
                            after = self.loaded = last
                        if len(keys) < LOAD_CHUNK:
                            self.watermark = top
                            self.loaded = None
                            return
        except Exception:  # noqa: BLE001 - queries go on scanning what is not loaded; say why
            log.exception("loading the open-ticket index failed; intake scans instead")
        finally:
            self.done.set()

    def catch_up(self, session: Session, encoder: str, exclude: int | None = None) -> bool:
        """Add the tickets stored (by any process) since the last look, and those reopened.

        ``exclude`` is the ticket being taken in: its row is not committed yet, and a
        rolled-back id may be handed out again (SQLite), so it joins the index on a
        later look, once it is really there. Returns False if the highest id went
        *down*: rows were deleted wholesale (a test emptying its database, a restore),
        and the caller starts a fresh index.
        """
        # By primary key: the tickets never read (those above the watermark, and the gaps —
        # ids not there at an earlier look — of the last CATCH_UP_MARGIN, which a transaction
        # that got its id earlier may still fill), each with its vector if it has one: one
        # statement; the new ones (open, this encoder) join the index and the window.
        rows = _fill(session, self.watermark, self.gaps, exclude)
        seen = {key for key, *_ in rows}
        # the highest id: read only when none above the watermark was (a busy desk's
        # intakes nearly always find some, and then the max() query is not needed)
        top = max(seen) if seen and max(seen) > self.watermark else _top(session, exclude)
        if top < self.watermark:
            return False
        self.gaps, self.watermark = _gaps(seen, self.watermark, self.gaps, CATCH_UP_MARGIN, top)
        fresh = set(self.index.absent(key for key, blob, *_ in rows if blob is not None))
        self._add([row for row in rows if row[0] in fresh], encoder)
        reopened = set(self.index.absent(i for i in self._reopened(session) if i != exclude))
        if reopened:
            self._load(session, encoder, _V.c.ticket_id.in_(sorted(reopened)))
        return True

    def _reopened(self, session: Session) -> list[int]:
        """Tickets moved back to an open status since the last look (by ``ticket_events`` id)."""
        rows = _unread(session, _REOPENED, _E.c.id, self.events, self.event_gaps, EVENT_MARGIN)
        seen = {key for key, _, _ in rows}
        self.event_gaps, self.events = _gaps(seen, self.events, self.event_gaps, EVENT_MARGIN, 0)
        return [ticket for _, ticket, reopens in rows if reopens]

    def _load(self, session: Session, encoder: str, where) -> set[int]:
        # By primary key (``where``) only, encoder and status checked here: given an equality
        # on an indexed column, SQLite (no statistics) would walk that index, all N rows.
        return self._add(list(_core(session).execute(_VECTORS.where(where))), encoder)

    def _add(self, rows: list, encoder: str) -> set[int]:
        """``(id, blob, encoder, dim, status, created_at)`` rows: the open ones of ``encoder``
        join the index and the window."""
        rows = [
            (key, blob, created_at)
            for key, blob, enc, dim, status, created_at in rows
            if blob is not None and enc == encoder and dim == self.index.dim and status in OPEN_STATUSES
        ]
        keys, vecs = _vectors(((key, blob) for key, blob, _ in rows), self.index.dim)
        if keys:
            self.index.add(keys, vecs)
            self.window.add(keys, [created_at for _, _, created_at in rows], vecs)
        return set(keys)


def _core(session: Session):
    """The session's connection for a Core statement, after the flush ``session.execute``
    would do first (autoflush): a caller's tickets not flushed yet are read as before."""
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()
    return session.connection()


# Core statements on the tables (not the ORM entities): the search runs on every intake,
# and the ORM's per-statement work (compile state, result set-up) was most of their cost.
_T, _V, _E = TicketRow.__table__, TicketVector.__table__, TicketEvent.__table__
_VECTOR_COLUMNS = (_V.c.vector, _V.c.encoder, _V.c.dim, _T.c.status, _V.c.created_at)
# a ticket with its vector (or None: stored without one), by ticket primary key
_TICKETS_WITH_VECTORS = select(_T.c.id, *_VECTOR_COLUMNS).select_from(
    _T.outerjoin(_V, _V.c.ticket_id == _T.c.id)
)
# vectors (with their ticket's status), by vector primary key
_VECTORS = select(_V.c.ticket_id, *_VECTOR_COLUMNS).select_from(_V.join(_T, _T.c.id == _V.c.ticket_id))
# by primary key only (see catch_up): the neighbours' status and subject (burst), the
# candidates' vectors, requester and status (duplicates)
_STATUS = select(_T.c.id, _T.c.status, _T.c.subject).where(_T.c.id.in_(bindparam("keys", expanding=True)))
# The keys bound on both sides of the join: with them on one side only, PostgreSQL planned a
# hash join over a sequential scan of ``tickets`` (every ticket read per intake, more the more
# were stored: round 8, ``pgserver``); bound on both, each side is a primary-key read of the
# candidates, whatever the table's size or its statistics' age (tests/test_catch_up_plans.py).
_NEAR = (
    select(_V.c.ticket_id, _V.c.vector, _T.c.requester, _V.c.created_at, _T.c.status, _V.c.encoder)
    .select_from(_V.join(_T, _T.c.id == _V.c.ticket_id))
    .where(
        _V.c.ticket_id.in_(bindparam("keys", expanding=True)),
        _T.c.id.in_(bindparam("keys", expanding=True)),
    )
)
_REOPENED = select(
    _E.c.id,
    _E.c.ticket_id,
    and_(_E.c.field == "status", _E.c.new.in_(OPEN_STATUSES), _E.c.old.not_in(OPEN_STATUSES)),
)


@contextmanager
def _reading(engine: Engine) -> Iterator[Session]:
    """A read-only session of its own (on SQLite: no write lock taken at BEGIN)."""
    with Session(engine) as session:
        session.connection(execution_options=read_options(engine.dialect.name))
        yield session
        session.rollback()


def _unread(session: Session, stmt, key, watermark: int, gaps: set[int] | None, margin: int) -> list:
    """``stmt``'s rows not read yet: ``key`` above the watermark, and the gaps below it (the
    whole margin at first).

    Two statements per ``stmt`` (with gaps and without), built once: the catch-up runs on every
    intake, and building and keying a statement cost more than running it. The range is closed
    above (``key <= :upto``, bound to the highest id there can be). On PostgreSQL a statement
    run often is planned once for any parameter (psycopg prepares it: the generic plan), and
    for an open range ``key > $1`` the planner assumes a third of the table (and with ``OR key
    IN (...)`` it can only scan): the catch-up read every row of ``tickets``,
    ``ticket_vectors`` and ``ticket_events`` on every intake, more the more tickets were stored
    (bench/README.md, round 5). A closed range is assumed small in any plan: index reads (the
    gaps as a second index read, OR-ed), ``tests/test_catch_up_plans.py``."""
    params: dict[str, Any] = {"above": watermark - margin if gaps is None else watermark, "upto": ID_MAX}
    if gaps:
        params["gaps"] = sorted(gaps)
    return list(_core(session).execute(_unread_statement(stmt, key, "gaps" in params), params))


def _unread_statement(stmt, key, with_gaps: bool):
    """``stmt`` limited to ``:above < key <= :upto`` (or ``key IN :gaps``); built once per base
    statement and variant."""
    built = _UNREAD.get((id(stmt), with_gaps))
    if built is None:
        where = and_(key > bindparam("above"), key <= bindparam("upto"))
        if with_gaps:
            where = or_(where, key.in_(bindparam("gaps", expanding=True)))
        built = _UNREAD[(id(stmt), with_gaps)] = stmt.where(where)
    return built


# the statements of _unread, by (id of the base statement — a module constant —, variant)
_UNREAD: dict[tuple[int, bool], Any] = {}


def _fill(session: Session, watermark: int, gaps: set[int] | None, exclude: int | None) -> list:
    """The tickets not read yet (primary-key range and point reads), each as ``(id, vector
    blob or None, encoder, dim, status, created_at)``. Tickets, not vectors, are read: a
    ticket is committed with its vector, so a ticket stored without one leaves no gap to
    ask for again."""
    rows = _unread(session, _TICKETS_WITH_VECTORS, _T.c.id, watermark, gaps, CATCH_UP_MARGIN)
    return rows if exclude is None else [row for row in rows if row[0] != exclude]


def _gaps(
    seen: set[int], watermark: int, gaps: set[int] | None, margin: int, top: int
) -> tuple[set[int], int]:
    """The gaps left after reading ``seen``, and the new watermark.

    Ids are allocated before commit, so an id missing below the highest one read
    may be a transaction still running (or one rolled back): it is asked for again
    on each look until it appears or falls ``margin`` ids behind the watermark, as
    the whole margin was re-read on every look before (the same guard, for the
    price of a point read per open gap instead of a range of ``margin`` rows).
    """
    high = max(watermark, top, max(seen, default=0))
    low = max(high - margin, 0)  # ids start at 1
    unknown = range(watermark - margin + 1, watermark + 1) if gaps is None else gaps
    pending = {i for i in unknown if i > low} | set(range(max(watermark, low) + 1, high + 1))
    return pending - seen, high


def _top(session: Session, exclude: int | None) -> int:
    """The highest ticket id (vectors share it; tickets without one count too, see _fill)."""
    stmt = select(func.max(TicketRow.id)).where(TicketRow.id != exclude)
    return int(session.execute(stmt).scalar() or 0)


def _top_event(session: Session) -> int:
    return int(session.execute(select(func.max(TicketEvent.id))).scalar() or 0)


def _vectors(rows, dim: int) -> tuple[list[int], np.ndarray]:
    """``(id, float32 bytes)`` rows as ids and one matrix (one decode, not one per row)."""
    keys, blobs = [], []
    for key, blob in rows:
        keys.append(int(key))
        blobs.append(blob)
    if not keys:
        return [], np.zeros((0, dim), dtype=np.float32)
    return keys, np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(keys), dim)


Position = tuple[datetime | None, int]  # (created_at, ticket id) of the last vector read
START: Position = (None, 0)


def _read_chunk(
    session: Session, encoder: str, dim: int, since: datetime, after: Position, exclude: int | None
) -> tuple[list[int], np.ndarray, Position, list[datetime]]:
    """The next ``LOAD_CHUNK`` open tickets' vectors after ``after``, in (created_at, id) order
    (and their times).

    The order is the ``(encoder, created_at)`` index's (SQLite keeps the id in every
    index entry), so each chunk is a range read of the window, not a sort of it.
    """
    at, last = after
    stmt = (
        select(TicketVector.ticket_id, TicketVector.vector, TicketVector.created_at)
        .join(TicketRow, TicketRow.id == TicketVector.ticket_id)
        .where(
            TicketVector.encoder == encoder,
            TicketVector.created_at >= (since if at is None else max(since, at)),
            TicketVector.ticket_id != exclude,
            TicketVector.dim == dim,
            TicketRow.status.in_(OPEN_STATUSES),
        )
        .order_by(TicketVector.created_at, TicketVector.ticket_id)
        .limit(LOAD_CHUNK)
    )
    if at is not None:  # past the last one read: later, or as late with a higher id
        stmt = stmt.where(or_(TicketVector.created_at > at, TicketVector.ticket_id > last))
    rows = list(session.execute(stmt))
    keys, vecs = _vectors(((key, blob) for key, blob, _ in rows), dim)
    return keys, vecs, ((rows[-1][2], rows[-1][0]) if rows else after), [at for _, _, at in rows]


_INDEXES: "weakref.WeakKeyDictionary[Engine, dict]" = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()
# the session whose search has just caught this thread's index up (see _window_in_memory): a
# request is served on one thread, so the burst that follows on it knows the window is current
_CAUGHT_UP = threading.local()


def forget(engine: Engine, timeout: float = 30.0) -> None:
    """Drop this process's indexes for ``engine`` once their loads have stopped (the engine
    is being disposed: a load still running would hold a connection past it)."""
    with _INDEXES_LOCK:
        dropped = list(_INDEXES.pop(engine, {}).values())
    for kept in dropped:
        kept.stopped = True
        kept.done.wait(timeout)


def _engine(session: Session) -> Engine:
    engine = session.get_bind()
    return getattr(engine, "engine", engine)


def _open_tickets(
    session: Session, encoder: str, dim: int, at: datetime, exclude: int | None, fresh: bool = False
) -> _OpenTickets:
    """This process's index for the session's database; the first use starts loading it."""
    engine = _engine(session)
    with _INDEXES_LOCK:
        per_engine = _INDEXES.setdefault(engine, {})
        found = per_engine.get((encoder, dim))
        if found is not None and not fresh:
            return found
        found = per_engine[(encoder, dim)] = _OpenTickets(dim, at)
    threading.Thread(
        target=found.load,
        args=(engine, encoder, at - RETENTION, exclude),
        name="open-ticket-index-load",
        daemon=True,
    ).start()
    return found


def _floor(vector: np.ndarray, config: DuplicateConfig) -> float | None:
    """The lowest cosine a duplicate can have (its score adds at most the requester boost),
    less ``FLOOR_MARGIN`` for the index's rounding; None unless the vectors are unit length
    (``find_duplicates`` scores the stored vectors as they are: only unit ones give the
    index's cosine)."""
    if abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
        return None
    return config.threshold - max(config.same_requester_boost, 0.0) - FLOOR_MARGIN


# the index's cosines are float16 above its exact threshold (error ~1e-3): candidates this
# far below the floor are still read and scored exactly
FLOOR_MARGIN = 0.02


def _candidates(
    session: Session,
    vec: np.ndarray,
    encoder: str,
    at: datetime,
    exclude: int | None,
    floor: float | None = None,
) -> tuple[_OpenTickets, list[int]]:
    """The ids of the ``CANDIDATES`` open tickets nearest ``vec``: index, plus a scan of what
    it has not loaded yet (the same answer as a full exact scan while it loads); with a
    ``floor``, only those at least that similar (the rest cannot be offered)."""
    kept = _open_tickets(session, encoder, vec.size, at, exclude)
    with kept.lock:
        if kept.loading:  # rows deleted wholesale meanwhile (a test emptying its tables)?
            current = kept.top <= _top(session, exclude)
        else:
            current = kept.catch_up(session, encoder, exclude)
        if current:
            loaded = kept.loaded  # read before searching: the index holds at least up to it
            near = kept.index.search(vec, CANDIDATES + 1)
            if loaded is None:  # caught up on this session: the burst window may answer from memory
                _CAUGHT_UP.session = weakref.ref(session)
        else:  # rows were deleted wholesale: start a fresh index (loading in the background)
            kept, loaded, near = _open_tickets(session, encoder, vec.size, at, exclude, fresh=True), START, []
    if loaded is not None:  # still loading: the rest, scored exactly, joins the ranking
        since = at - RETENTION
        near += _scan_after(session, vec, encoder, since, loaded, exclude)
        near = sorted(dict(near).items(), key=lambda hit: -hit[1])
    near = [hit for hit in near if hit[0] != exclude][:CANDIDATES]
    return kept, [key for key, score in near if floor is None or score >= floor]


def _scan_after(
    session: Session, vec: np.ndarray, encoder: str, since: datetime, after: Position, exclude: int | None
) -> list[tuple[int, float]]:
    """Exact top candidates among the open tickets after ``after`` (chunk by chunk)."""
    best: list[tuple[int, float]] = []
    unit = vec / (np.linalg.norm(vec) or 1.0)
    while True:
        keys, vecs, after, _ = _read_chunk(session, encoder, vec.size, since, after, exclude)
        if keys:
            norms = np.linalg.norm(vecs, axis=1)
            norms[norms == 0] = 1.0
            scores = np.einsum("ij,j->i", vecs, unit) / norms
            top = np.argsort(-scores, kind="stable")[: CANDIDATES + 1]
            best = sorted(best + [(keys[i], float(scores[i])) for i in top], key=lambda hit: -hit[1])
            best = best[: CANDIDATES + 1]
        if len(keys) < LOAD_CHUNK:
            return best


def _nearest(
    session: Session,
    vector,
    encoder: str,
    since: datetime,
    at: datetime,
    exclude: int | None,
    floor: float | None = None,
) -> list[tuple]:
    """``(id, vector, requester, created_at)`` of the open tickets nearest ``vector`` (with a
    ``floor``: only those whose cosine reaches it; the others are not read)."""
    vec = np.asarray(vector, dtype=np.float32).ravel()
    kept, near = _candidates(session, vec, encoder, at, exclude, floor)
    if not near:
        return []
    rows, gone = [], set(near)
    for key, blob, requester, created_at, status, enc in _core(session).execute(_NEAR, {"keys": near}):
        if status not in OPEN_STATUSES or enc != encoder:
            continue  # closed since it was indexed: dropped below
        gone.discard(key)
        if created_at >= since:
            rows.append((key, np.frombuffer(blob, dtype=np.float32), requester, created_at))
    if gone:  # closed, merged or never committed: the index stops proposing them
        kept.index.remove(gone)
    return rows
