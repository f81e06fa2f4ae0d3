"""The knowledge report: which articles earn their keep, does the portal deflect, what is missing.

* Per article: visits where it was shown, opened, marked as solving, and
  followed by a ticket anyway (the portal's events).
* Deflection: the share of portal visits that ended without a ticket, in the
  visitors who saw suggestions (treatment) against the random control group who
  saw none. The difference is the portal's effect, with Newcombe's interval:
  without the control group a "deflection rate" only counts clicks.
* Knowledge gaps: recent tickets whose best article scored below the relevance
  threshold, clustered (spherical k-means on their vectors) and named by their
  commonest terms, with example tickets: what to write next.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from triage.duplicates import cluster_label

from .stats import newcombe_diff, rate, wilson


# ----------------------------------------------------------------- articles + deflection
def article_table(counts: Iterable[Mapping[str, Any]], titles: Mapping[str, str] | None = None) -> list[dict]:
    """Counts per article with open / solve / ticket-anyway rates over times shown."""
    titles = titles or {}
    out = []
    for c in counts:
        shown = int(c.get("shown") or 0)
        out.append(
            {
                **c,
                "title": titles.get(str(c.get("article_id")), ""),
                "open_rate": rate(int(c.get("opened") or 0), shown),
                "solve_rate": rate(int(c.get("solved") or 0), shown),
                "ticket_anyway_rate": rate(int(c.get("ticket_anyway") or 0), shown),
            }
        )
    return out


def deflection(groups: Mapping[str, Mapping[str, int]]) -> dict:
    """Deflection per group (visits without a ticket / visits) and treatment − control.

    ``groups``: ``{"treatment"|"control": {"visits", "solved", "submitted", "abandoned"}}``.
    Abandoned visits count as deflected in both groups alike, so their share cancels
    in the difference.
    """
    out: dict[str, Any] = {}
    for name in ("treatment", "control"):
        g = groups.get(name) or {}
        n = int(g.get("visits") or 0)
        k = n - int(g.get("submitted") or 0)
        lo, hi = wilson(k, n)
        out[name] = {
            "visits": n,
            "deflected": k,
            "solved": int(g.get("solved") or 0),
            "rate": rate(k, n),
            "ci_low": lo,
            "ci_high": hi,
        }
    d, lo, hi = newcombe_diff(
        out["treatment"]["deflected"],
        out["treatment"]["visits"],
        out["control"]["deflected"],
        out["control"]["visits"],
    )
    out["difference"] = {
        "value": d,
        "ci_low": lo,
        "ci_high": hi,
        "significant": d is not None and (lo > 0 or hi < 0),
    }
    return out


# ----------------------------------------------------------------- gaps
def kmeans(vectors: np.ndarray, k: int, *, iters: int = 25, seed: int = 0) -> np.ndarray:
    """Spherical k-means (cosine) with k-means++ seeding; returns a cluster id per row."""
    X = _unit(np.asarray(vectors, dtype=float))
    n = len(X)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [X[rng.integers(n)]]
    for _ in range(1, k):
        d = 1 - np.max(X @ np.asarray(centres).T, axis=1)
        d = np.clip(d, 0, None) ** 2
        centres.append(X[rng.choice(n, p=d / d.sum())] if d.sum() > 0 else X[rng.integers(n)])
    C = np.asarray(centres)
    assign = np.zeros(n, int)
    for _ in range(iters):
        new = np.argmax(X @ C.T, axis=1)
        if _ and np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = X[assign == j]
            if len(members):
                C[j] = _unit(members.sum(axis=0, keepdims=True))[0]
    return assign


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms == 0, 1, norms)


def knowledge_gaps(
    tickets: Sequence[Mapping[str, Any]],
    vectors: np.ndarray,
    best_scores: Sequence[float],
    threshold: float,
    *,
    k: int | None = None,
    examples: int = 3,
    min_size: int = 2,
) -> list[dict]:
    """Clusters of tickets whose best KB score was below ``threshold``, biggest first.

    ``tickets`` rows carry ``id``, ``subject`` and ``text``; ``vectors`` and
    ``best_scores`` are aligned with them. ``k`` defaults to about one cluster per
    five uncovered tickets (2 to 8).
    """
    low = [i for i, s in enumerate(best_scores) if s is None or s < threshold]
    if not low:
        return []
    X = np.asarray(vectors, dtype=float)[low]
    k = k or int(min(8, max(2, round(len(low) / 5))))
    assign = kmeans(X, k) if len(low) > 1 else np.zeros(1, int)
    out = []
    for j in sorted(set(assign.tolist())):
        members = [low[i] for i in np.flatnonzero(assign == j)]
        if len(members) < min_size:
            continue
        members.sort(key=lambda i: best_scores[i] if best_scores[i] is not None else -1.0)
        out.append(
            {
                "size": len(members),
                "label": cluster_label([str(tickets[i].get("text") or "") for i in members]),
                "best_score": max(float(best_scores[i] or 0.0) for i in members),
                "examples": [
                    {
                        "id": tickets[i].get("id"),
                        "subject": tickets[i].get("subject"),
                        "score": best_scores[i],
                    }
                    for i in members[:examples]
                ],
            }
        )
    return sorted(out, key=lambda c: -c["size"])


# ----------------------------------------------------------------- store + assembling
def build_report(
    counts: Sequence[Mapping[str, Any]],
    groups: Mapping[str, Mapping[str, int]],
    gaps: list[dict],
    *,
    titles: Mapping[str, str] | None = None,
    threshold: float | None = None,
    generated_at: str = "",
    window_days: int = 30,
) -> dict:
    return {
        "generated_at": generated_at,
        "window_days": window_days,
        "articles": article_table(counts, titles),
        "deflection": deflection(groups),
        "gaps": gaps,
        "threshold": threshold,
    }


def recent_tickets(session, since: datetime, limit: int = 300) -> list[dict]:
    """Tickets since ``since`` (newest first) with the text the KB search reads."""
    from sqlalchemy import select

    from triage.store.tables import TicketRow
    from triage.text import model_text

    rows = session.execute(
        select(TicketRow.id, TicketRow.subject, TicketRow.body)
        .where(TicketRow.created_at >= since)
        .order_by(TicketRow.id.desc())
        .limit(limit)
    ).all()
    return [{"id": i, "subject": s, "text": model_text(s or "", b or "")} for i, s, b in rows]


def stored_vectors(session, ids: Sequence[int], encoder) -> dict[int, np.ndarray]:
    """Vectors intake already stored for these tickets in ``encoder``'s space (no re-encoding)."""
    from sqlalchemy import select

    from triage.store.similar import encoder_name
    from triage.store.tables import TicketVector

    if not ids:
        return {}
    stmt = select(TicketVector.ticket_id, TicketVector.vector).where(
        TicketVector.encoder == encoder_name(encoder), TicketVector.ticket_id.in_(list(ids))
    )
    return {tid: np.frombuffer(vec, dtype=np.float32) for tid, vec in session.execute(stmt)}


def gaps_with_kb(
    tickets: Sequence[Mapping[str, Any]],
    kb,
    encoder,
    threshold: float | None = None,
    known: Mapping[int, np.ndarray] | None = None,
    **kw: Any,
) -> list[dict]:
    """Best KB score of each ticket, then :func:`knowledge_gaps`.

    ``known`` vectors (by ticket id, e.g. :func:`stored_vectors`) are reused; the rest are
    encoded in one batch.
    """
    if not tickets or kb is None or encoder is None:
        return []
    dim = getattr(encoder, "dim", None)
    known = {k: v for k, v in (known or {}).items() if dim is None or v.size == dim}
    texts = [str(t.get("text") or "") for t in tickets]
    missing = [i for i, t in enumerate(tickets) if t.get("id") not in known]
    fresh = iter(np.asarray(encoder.encode([texts[i] for i in missing])) if missing else [])
    vectors = np.vstack(
        [
            np.asarray(known[t["id"]] if t.get("id") in known else next(fresh), dtype=np.float32)
            for t in tickets
        ]
    )
    cut = kb.config.threshold if threshold is None else threshold
    best = []
    for text, vec in zip(texts, vectors):
        ranked = kb.ranked(text, vec, 1) if text.strip() else []
        best.append(float(ranked[0][1]) if ranked else None)
    return knowledge_gaps(tickets, vectors, best, cut, **kw)
