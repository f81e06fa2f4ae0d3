"""Shadow predictions: what a challenger bundle said about live tickets, never applied.

Kept in their own table rather than in ``predictions`` because that table is what intake
and feedback read as "the model's view" of a ticket (feedback rows link to its newest
prediction per head); a shadow row there would be taken for the champion's.

Each row holds the challenger's answer for one head and, from the same moment, the
champion's label, so the report needs no join to tell agreement; grading against agents'
final labels goes through :mod:`triage.store.labels`, the same rules a retrain learns by.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import Float, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.store.labels import final_labels
from triage.store.tables import Base, utcnow


class ShadowPrediction(Base):
    """One head of one challenger prediction (``ticket_id`` is NULL for a bare classify call)."""

    __tablename__ = "shadow_predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(20), default="ticket")  # ticket | classify
    head: Mapped[str] = mapped_column(String(100))
    label: Mapped[str | None] = mapped_column(String(200))
    probability: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str | None] = mapped_column(String(20))
    bundle_id: Mapped[str] = mapped_column(String(200), index=True)
    champion_bundle_id: Mapped[str | None] = mapped_column(String(200))
    champion_label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def record(
    session: Session,
    shadow: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    *,
    ticket_id: int | None = None,
    source: str = "ticket",
    now: datetime | None = None,
) -> list[ShadowPrediction]:
    """Store one challenger result (``{"fields": {head: {...}}, "bundle_id"}``) per head."""
    champ_fields = (champion or {}).get("fields") or {}
    rows = []
    for head, out in (shadow.get("fields") or {}).items():
        label = out.get("label")
        champ = champ_fields.get(head) or {}
        rows.append(
            ShadowPrediction(
                ticket_id=ticket_id,
                source=source,
                head=head,
                label=None if label is None else str(label),
                probability=out.get("probability"),
                decision=out.get("decision"),
                bundle_id=str(shadow.get("bundle_id") or ""),
                champion_bundle_id=(champion or {}).get("bundle_id"),
                champion_label=None if champ.get("label") is None else str(champ["label"]),
                created_at=now or utcnow(),
            )
        )
    session.add_all(rows)
    session.flush()
    return rows


def for_ticket(session: Session, ticket_id: int) -> list[ShadowPrediction]:
    stmt = select(ShadowPrediction).where(ShadowPrediction.ticket_id == ticket_id)
    return list(session.scalars(stmt.order_by(ShadowPrediction.id)))


def report(
    session: Session, bundle_id: str | None = None, *, known: Mapping[str, set[str]] | None = None
) -> dict[str, Any]:
    """Per challenger bundle and head: how often champion and challenger agree with each
    other and with agents' final labels, on the tickets that have one.

    ``{bundle: {head: {"shadowed", "agree_with_champion", "labelled", "champion_correct",
    "challenger_correct", "champion_accuracy", "challenger_accuracy"}}}``
    """
    stmt = select(ShadowPrediction).order_by(ShadowPrediction.id)
    if bundle_id:
        stmt = stmt.where(ShadowPrediction.bundle_id == bundle_id)
    newest: dict[tuple[str, int | None, str, int], ShadowPrediction] = {}
    for row in session.scalars(stmt):
        key = (row.bundle_id, row.ticket_id, row.head, row.id if row.ticket_id is None else 0)
        newest[key] = row  # one vote per ticket: its newest shadow prediction
    heads = sorted({k[2] for k in newest})
    ids = sorted({k[1] for k in newest if k[1] is not None})
    finals = final_labels(session, heads, known, ids=ids).tickets if ids else {}
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (bundle, tid, head, _), row in newest.items():
        c = out[bundle].setdefault(
            head,
            {
                "shadowed": 0,
                "agree_with_champion": 0,
                "labelled": 0,
                "champion_correct": 0,
                "challenger_correct": 0,
            },
        )
        c["shadowed"] += 1
        c["agree_with_champion"] += row.label == row.champion_label
        truth = (finals.get(tid) or (None, {}))[1].get(head) if tid is not None else None
        if truth is not None:
            c["labelled"] += 1
            c["champion_correct"] += row.champion_label == truth
            c["challenger_correct"] += row.label == truth
    for heads_ in out.values():
        for c in heads_.values():
            n = c["labelled"]
            c["champion_accuracy"] = round(c["champion_correct"] / n, 4) if n else None
            c["challenger_accuracy"] = round(c["challenger_correct"] / n, 4) if n else None
            c["agreement"] = round(c["agree_with_champion"] / c["shadowed"], 4)
    return dict(out)


__all__ = ["ShadowPrediction", "record", "for_ticket", "report"]
