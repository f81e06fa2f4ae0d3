"""Near-duplicates and bursts at intake: the store's side of ``triage.duplicates``.

The maths lives in ``triage.duplicates`` (vectors in, candidates out); this
module keeps each ticket's vector and feeds it the open tickets of a recent
window. Duplicates are only *offered* (an agent merges); a burst only
*proposes* a major incident (an agent links the children to a parent).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.duplicates import DuplicateConfig, detect_burst, find_duplicates
from triage.store.tables import TicketRow, TicketVector
from triage.store.tickets import OPEN_STATUSES

BURST_WINDOW = timedelta(minutes=30)
BURST_MIN_SIZE = 5


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
    since = ticket.created_at - (config.window or timedelta(days=30))
    rows = [(i, v, r, t) for i, v, r, t, _ in _recent(session, encoder, since, ticket.id)
            if v.size == np.size(vector)]
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
