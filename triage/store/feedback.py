"""Predictions and the corrections agents make to them.

A correction is the most valuable label the system gets: a case the model
was confident enough to speak about, and a human said otherwise. It is stored
with what the model said, how sure it was, and which bundle said it, so the
retrain can weigh it and the confidence report can compare it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from triage.store import event_log
from triage.store.tables import Feedback, Prediction, TicketRow, utcnow

# Which ticket field each model head predicts.
HEAD_FIELDS = {
    "category": "category",
    "type": "ticket_type",
    "priority": "priority",
    "team": "team",
    "affected_service": "affected_service",
}


def field_of(head: str) -> str:
    return HEAD_FIELDS.get(head, head)


def store_predictions(
    session: Session, ticket: TicketRow, result: dict[str, Any], now: datetime | None = None
) -> int:
    """Keep one Triager result (``{"fields": {head: {...}}, "bundle_id"}``) per head.

    One multi-row INSERT (intake writes these for every ticket; nothing needs their
    ids back); returns how many rows were written.
    """
    now = now or utcnow()
    rows = [
        {
            "ticket_id": ticket.id,
            "head": head,
            "label": _label(out.get("label")),
            "probability": out.get("probability"),
            "decision": str(out.get("decision") or "abstain"),
            "bundle_id": str(result.get("bundle_id") or ""),
            "created_at": now,
        }
        for head, out in (result.get("fields") or {}).items()
    ]
    event_log.write_later(session, _INSERT_PREDICTIONS, rows)  # with the batch's, if any
    return len(rows)


_INSERT_PREDICTIONS = insert(Prediction.__table__)  # built once: its compiled form stays cached


def _label(value: Any) -> str | None:
    return None if value is None else str(value)


def latest_predictions(session: Session, ticket_id: int) -> dict[str, Prediction]:
    """The newest prediction per head."""
    stmt = select(Prediction).where(Prediction.ticket_id == ticket_id).order_by(Prediction.id)
    return {p.head: p for p in session.scalars(stmt)}


def record_change(
    session: Session,
    ticket: TicketRow,
    field: str,
    old: Any,
    new: Any,
    *,
    by: str,
    now: datetime | None = None,
) -> list[Feedback]:
    """If a model predicted ``field``, store the human's value as a correction of it.

    Recorded whenever a person changes a predicted field, including confirming
    a suggestion (predicted == corrected): agreement is a label too.
    """
    rows = []
    for head, pred in latest_predictions(session, ticket.id).items():
        if field_of(head) != field:
            continue
        row = Feedback(
            ticket_id=ticket.id,
            head=head,
            predicted=pred.label,
            corrected=_label(new),
            decision=pred.decision,
            bundle_id=pred.bundle_id,
            confidence=pred.probability,
            by=by,
            at=now or utcnow(),
        )
        session.add(row)
        rows.append(row)
    return rows


def has_label(session: Session, ticket_id: int, field: str) -> bool:
    """Whether a person already gave (changed or confirmed) the value of ``field``."""
    heads = [h for h in latest_predictions(session, ticket_id) if field_of(h) == field]
    if not heads:
        return False
    stmt = select(Feedback.id).where(Feedback.ticket_id == ticket_id, Feedback.head.in_(heads))
    return session.scalars(stmt).first() is not None


def for_ticket(session: Session, ticket_id: int) -> list[Feedback]:
    stmt = select(Feedback).where(Feedback.ticket_id == ticket_id).order_by(Feedback.id)
    return list(session.scalars(stmt))


def export(session: Session, since: datetime | None = None) -> list[dict[str, Any]]:
    """Corrections as plain rows (for retraining and the confidence report)."""
    stmt = select(Feedback).order_by(Feedback.id)
    if since is not None:
        stmt = stmt.where(Feedback.at >= since)
    return [
        {
            "ticket_id": f.ticket_id,
            "head": f.head,
            "predicted": f.predicted,
            "corrected": f.corrected,
            "decision": f.decision,
            "bundle_id": f.bundle_id,
            "confidence": f.confidence,
            "by": f.by,
            "at": f.at.isoformat(),
        }
        for f in session.scalars(stmt)
    ]
