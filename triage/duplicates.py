"""Near-duplicate tickets and bursts (major-incident candidates), on vectors only.

Both functions take embeddings (L2-normalised, so a dot product is a cosine),
requesters and creation times: no model, no store. The store keeps the open
tickets' vectors and calls these at intake; tests use ``HashingEncoder``.

* :func:`find_duplicates` — at creation, the open tickets that look like the same
  request: similar text, optionally the same requester, created within a window.
  One matrix–vector product over the candidates, so a few thousand open tickets
  cost well under a millisecond.
* :func:`detect_burst` — many similar tickets in a short window from anyone:
  "VPN down" ×6 in ten minutes is one incident, not six problems.

Thresholds depend on the encoder: the defaults suit all-MiniLM-L6-v2 (cosine);
the hashing encoder used in tests needs lower ones.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Hashable, Sequence

import numpy as np


@dataclass(frozen=True)
class DuplicateConfig:
    """How alike two tickets must be to be offered as duplicates.

    threshold        minimum score (cosine + boost) to offer a candidate
    same_requester_boost   added to the cosine when both tickets share a requester
    require_same_requester only the requester's own tickets qualify
    window           only candidates created within this time of the new ticket (None: any age)
    limit            at most this many results, best first

    Defaults are for all-MiniLM-L6-v2. On hand-made pairs it gave reworded duplicates
    a cosine of 0.69-0.91 and same-topic-but-different requests ("paper jam" vs "out
    of toner", "grant access" vs "remove access") 0.61-0.79: no threshold separates
    them, so duplicates are only *offered*, and the requester boost tips the balance.
    """

    threshold: float = 0.75
    same_requester_boost: float = 0.05
    require_same_requester: bool = False
    window: timedelta | None = timedelta(days=7)
    limit: int = 5


@dataclass
class Candidates:
    """Open tickets as parallel arrays, built once and reused for every query.

    ``vectors`` is an (n, dim) float32 matrix; ``times`` are POSIX seconds.
    """

    ids: list[Hashable]
    vectors: np.ndarray
    requesters: np.ndarray
    times: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[Any], dim: int | None = None) -> "Candidates":
        """From ``(ticket_id, vector, requester, created_at)`` tuples (or objects with those attributes)."""
        rows = [_row(r) for r in rows]
        if rows:
            vectors = np.vstack([np.asarray(r[1], dtype=np.float32).ravel() for r in rows])
        else:
            vectors = np.zeros((0, dim or 0), dtype=np.float32)
        return cls(
            ids=[r[0] for r in rows],
            vectors=vectors,
            requesters=np.array([_requester(r[2]) for r in rows], dtype=object),
            times=np.array([_seconds(r[3]) for r in rows], dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.ids)


def _row(r: Any) -> tuple:
    if isinstance(r, (tuple, list)):
        return tuple(r[:4])
    return (r.ticket_id, r.vector, r.requester, r.created_at)


def _requester(value: str | None) -> str:
    """Addresses compare case-insensitively; an unknown requester matches nobody."""
    return (value or "").strip().lower()


def _seconds(when: datetime | None) -> float:
    if when is None:
        return np.nan
    if when.tzinfo is None:  # naive means UTC everywhere in this project
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _unit(vec: Any) -> np.ndarray:
    v = np.asarray(vec, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(v))
    return v / norm if norm else v


def find_duplicates(
    query_vec: Any,
    requester: str | None,
    created_at: datetime | None,
    candidates: Candidates | Sequence[Any],
    *,
    config: DuplicateConfig = DuplicateConfig(),
    exclude: Hashable | None = None,
) -> list[tuple[Hashable, float, list[str]]]:
    """Open tickets that look like the same request, best first: ``[(ticket_id, score, reasons)]``.

    ``score`` is the cosine plus ``same_requester_boost`` when the requester
    matches, capped at 1. ``reasons`` are short human-readable strings for the
    agent ("text similarity 0.91", "same requester", "opened 2 h earlier").
    ``exclude`` drops the new ticket itself if it is already among the candidates.
    """
    cands = candidates if isinstance(candidates, Candidates) else Candidates.from_rows(candidates)
    if len(cands) == 0:
        return []
    if np.size(query_vec) != cands.vectors.shape[1]:
        raise ValueError(
            f"query vector has {np.size(query_vec)} dimensions, expected "
            f"{cands.vectors.shape[1]} like the candidates (same encoder?)"
        )
    # einsum, not `@`: a matrix-vector product through multi-threaded BLAS on a
    # busy server took 20 ms instead of <1 ms (thread oversubscription); einsum's
    # single-threaded loop is steady at ~0.8 ms for 4,000 × 384.
    cosine = np.einsum("ij,j->i", cands.vectors, _unit(query_vec).astype(cands.vectors.dtype))
    same = cands.requesters == _requester(requester)
    if not _requester(requester):
        same = np.zeros(len(cands), dtype=bool)
    score = np.minimum(cosine + config.same_requester_boost * same, 1.0)
    keep = score >= config.threshold
    if config.require_same_requester:
        keep &= same
    now = _seconds(created_at)
    gap = now - cands.times  # positive: the candidate is older
    if config.window is not None and not np.isnan(now):
        keep &= np.abs(np.nan_to_num(gap, nan=np.inf)) <= config.window.total_seconds()
    hits = np.flatnonzero(keep)
    hits = hits[np.argsort(-score[hits], kind="stable")]
    order = [int(i) for i in hits if exclude is None or cands.ids[i] != exclude][: config.limit]
    return [
        (cands.ids[i], round(float(score[i]), 4), _reasons(float(cosine[i]), bool(same[i]), float(gap[i])))
        for i in order
    ]


def _reasons(cosine: float, same_requester: bool, gap_seconds: float) -> list[str]:
    reasons = [f"text similarity {cosine:.2f}"]
    if same_requester:
        reasons.append("same requester")
    if not np.isnan(gap_seconds):
        reasons.append(f"opened {_duration(abs(gap_seconds))} {'earlier' if gap_seconds >= 0 else 'later'}")
    return reasons


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


# ------------------------------------------------------------------ bursts
@dataclass
class Cluster:
    """A proposed major incident.

    seed      the member closest to the centroid: the natural parent ticket
    members   ticket ids, oldest first (the seed included)
    centroid  mean of the members' vectors, L2-normalised
    started_at, ended_at   first and last member's creation time
    label     the terms most members share, e.g. "vpn down"
    cohesion  mean cosine of the members to the centroid
    """

    seed: Hashable
    members: list[Hashable]
    centroid: np.ndarray
    started_at: datetime
    ended_at: datetime
    label: str = ""
    cohesion: float = 0.0
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.members)


def detect_burst(
    recent: Sequence[tuple],
    window: timedelta = timedelta(minutes=30),
    min_size: int = 5,
    similarity: float = 0.75,
) -> list[Cluster]:
    """Bursts of similar tickets: at least ``min_size`` tickets, all created within one
    ``window``, each with cosine ≥ ``similarity`` to the burst's seed. Largest first.

    ``recent`` holds ``(ticket_id, vector, created_at)`` or ``(ticket_id, vector,
    created_at, text)``; with texts, each cluster gets a label. Greedy: the ticket
    with most similar neighbours in its window seeds a cluster, its members are
    removed, repeat. Seeding by the densest ticket (rather than single linkage)
    keeps a chain of loosely related tickets from merging into one "incident".
    """
    if len(recent) < max(min_size, 1):
        return []
    vecs = np.vstack([np.asarray(r[1], dtype=np.float32).ravel() for r in recent])
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs / np.where(norms == 0, 1.0, norms)
    times = np.array([_seconds(r[2]) for r in recent], dtype=np.float64)
    texts = [r[3] if len(r) > 3 else None for r in recent]
    span = window.total_seconds()
    idx = np.flatnonzero(~np.isnan(times))  # a ticket without a time cannot be in a burst
    idx = idx[np.argsort(times[idx], kind="stable")]
    linked = _linked(vecs[idx], times[idx], similarity, span)
    degree = linked.sum(axis=1)
    free = np.ones(len(idx), dtype=bool)
    clusters = []
    while True:
        seed = int(np.argmax(np.where(free, degree, -1))) if len(idx) else 0
        if not len(idx) or not free[seed] or degree[seed] < min_size:
            break
        members = _densest_window(np.flatnonzero(linked[seed] & free), times[idx], seed, span)
        if len(members) < min_size:
            members = np.array([seed])  # its neighbours spread over more than one window
        free[members] = False
        degree -= linked[:, members].sum(axis=1)  # O(n·k), not a fresh n² count per cluster
        if len(members) >= min_size:
            clusters.append(_cluster(recent, vecs, times, texts, idx[members]))
    return sorted(clusters, key=lambda c: (-c.size, c.started_at))


def _linked(vecs: np.ndarray, times: np.ndarray, similarity: float, span: float) -> np.ndarray:
    """Pairs (time-sorted rows) with cosine ≥ ``similarity`` created at most ``span`` s apart."""
    lo = np.searchsorted(times, times - span, side="left")
    hi = np.searchsorted(times, times + span, side="right")
    n = len(times)
    cols = np.arange(n)
    linked = np.zeros((n, n), dtype=bool)
    for a in range(0, n, _BLOCK):  # only the band of rows that can be within the window
        b = min(n, a + _BLOCK)
        c0, c1 = int(lo[a]), int(hi[b - 1])
        near = (cols[c0:c1] >= lo[a:b, None]) & (cols[c0:c1] < hi[a:b, None])
        linked[a:b, c0:c1] = near & (vecs[a:b] @ vecs[c0:c1].T >= similarity)
    return linked


_BLOCK = 256


def _densest_window(idx: np.ndarray, times: np.ndarray, seed: int, span: float) -> np.ndarray:
    """The most members of ``idx`` whose times fit in one ``span`` that contains the seed."""
    order = idx[np.argsort(times[idx], kind="stable")]
    t = times[order]
    best, best_lo, best_hi = 0, 0, 0
    hi = 0
    for lo in range(len(order)):
        while hi < len(order) and t[hi] - t[lo] <= span:
            hi += 1
        if t[lo] <= times[seed] <= t[hi - 1] and hi - lo > best:
            best, best_lo, best_hi = hi - lo, lo, hi
    return order[best_lo:best_hi]


def _cluster(
    recent: Sequence[tuple], vecs: np.ndarray, times: np.ndarray, texts: list[str | None], members: np.ndarray
) -> Cluster:
    members = members[np.argsort(times[members], kind="stable")]
    centroid = _unit(vecs[members].mean(axis=0))
    sims = vecs[members] @ centroid
    seed = int(members[int(np.argmax(sims))])
    when = [datetime.fromtimestamp(times[i], tz=timezone.utc) for i in (members[0], members[-1])]
    return Cluster(
        seed=recent[seed][0],
        members=[recent[i][0] for i in members],
        centroid=centroid,
        started_at=when[0],
        ended_at=when[1],
        label=cluster_label([texts[i] for i in members if texts[i]]),
        cohesion=round(float(sims.mean()), 4),
    )


_STOPWORDS = frozenset(
    """
a about after again all also am an and any are as at be been being but by can cannot cant could
did do does dont for from get getting got had has have having hello help hi how i im in is it its
just me my no not of on or our please pc since so some still that the their them then there this
to today too unable up us was we were what when which while why will with would you your thanks
thank team dear regards best kind issue problem again urgent asap morning anyone someone
""".split()
)
_WORD = re.compile(r"[^\W\d_][\w'-]{1,}", re.UNICODE)


def cluster_label(texts: Sequence[str], max_terms: int = 3) -> str:
    """The terms most of the texts share (document frequency), e.g. ``"vpn down"``.

    Terms keep the order in which they first appear in the most typical text,
    so the label reads like a phrase rather than a frequency list.
    """
    docs = [[w for w in _WORD.findall(t.lower()) if w not in _STOPWORDS] for t in texts if t]
    if not docs:
        return ""
    df = Counter(w for d in docs for w in set(d))
    floor = max(2, (len(docs) + 1) // 2) if len(docs) > 1 else 1
    top = [w for w, n in df.most_common() if n >= floor][:max_terms]
    if not top:
        top = [w for w, _ in df.most_common(max_terms)]
    first = {}
    for d in docs:
        for pos, w in enumerate(d):
            first.setdefault(w, pos)
    return " ".join(sorted(top, key=lambda w: first[w]))
