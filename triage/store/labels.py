"""Final human labels of stored tickets: what a retrain learns from and shadow mode is graded on.

A model must never learn from its own guesses, so a label counts only when a person gave it:

* a ticket field (``category``, ``team``, ``priority``, ...) whose last change was made by a
  person: any actor but ``model:<bundle>`` and ``rules...``; a correction through
  ``PATCH /v1/tickets/<id>`` is such a change, and so is a confirmation of the model's value
  (no change, but the newest feedback row of the head names the value);
* on a resolved or closed ticket, the fields as they stand (the agent who closed it let
  them be: an implicit confirmation), unless ``confirm_on_close=False``;
* for heads with no ticket field (``type``, ``impact``, ``urgency``), the newest feedback row
  of that head whose corrected value is a class the head knows (``known``): the store files
  a change of ``category`` under every head it maps to ``category``, and such values are no
  labels of ``type``.

The newest label wins: the ticket's current field is the newest by definition, and of the
feedback rows the newest one with a valid value is taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from sqlalchemy import select

from triage.store.tables import Feedback, TicketEvent, TicketRow

TICKET_FIELDS = ("category", "priority", "affected_service", "customer_tier", "team")
MACHINE_ACTORS = ("model:", "rules")
CLOSED = ("resolved", "closed")


@dataclass
class FinalLabels:
    """``tickets``: id -> (TicketRow, {head: label}); ``counts`` for reports."""

    tickets: dict[int, tuple[TicketRow, dict[str, str]]] = field(default_factory=dict)
    counts: dict = field(default_factory=dict)


def is_human(actor: str | None) -> bool:
    return bool(actor) and not str(actor).startswith(MACHINE_ACTORS)


def _last_changes(session, ids: Sequence[int]) -> dict[tuple[int, str], TicketEvent]:
    out: dict[tuple[int, str], TicketEvent] = {}
    stmt = select(TicketEvent).where(TicketEvent.ticket_id.in_(ids)).order_by(TicketEvent.id)
    for ev in session.scalars(stmt):
        out[(ev.ticket_id, ev.field)] = ev
    return out


def _feedback(session, ids: Sequence[int] | None) -> dict[tuple[int, str], list[Feedback]]:
    """Feedback rows per (ticket, head), oldest first."""
    stmt = select(Feedback).order_by(Feedback.at, Feedback.id)
    if ids is not None:
        stmt = stmt.where(Feedback.ticket_id.in_(ids))
    out: dict[tuple[int, str], list[Feedback]] = {}
    for fb in session.scalars(stmt):
        out.setdefault((fb.ticket_id, fb.head), []).append(fb)
    return out


def _candidate_ids(session, heads: Sequence[str]) -> list[int]:
    ids = set(session.scalars(select(Feedback.ticket_id).distinct()))
    fields = [h for h in heads if h in TICKET_FIELDS]
    if fields:
        stmt = select(TicketEvent.ticket_id).where(TicketEvent.field.in_(fields)).distinct()
        ids |= set(session.scalars(stmt))
    return sorted(ids)


def final_labels(
    session,
    heads: Iterable[str],
    known: Mapping[str, set[str]] | None = None,
    *,
    ids: Sequence[int] | None = None,
    confirm_on_close: bool = True,
) -> FinalLabels:
    """Human labels per ticket (``ids``, else every ticket with feedback or field changes)."""
    heads, known = list(heads), known or {}
    ids = sorted(ids) if ids is not None else _candidate_ids(session, heads)
    out = FinalLabels(
        counts={"tickets_seen": len(ids), "labels": {h: 0 for h in heads}, "ignored_feedback": 0}
    )
    if not ids:
        return out
    fb, events = _feedback(session, ids), _last_changes(session, ids)
    rows = {t.id: t for t in session.scalars(select(TicketRow).where(TicketRow.id.in_(ids)))}
    for tid in ids:
        ticket = rows.get(tid)
        if ticket is None:
            continue
        labels = {}
        for head in heads:
            value = label_of(
                ticket,
                head,
                events.get((tid, head)),
                fb.get((tid, head), []),
                known.get(head),
                confirm_on_close,
            )
            if value is None:
                out.counts["ignored_feedback"] += (tid, head) in fb
                continue
            labels[head] = value
            out.counts["labels"][head] += 1
        if labels:
            out.tickets[tid] = (ticket, labels)
    out.counts["tickets_with_labels"] = len(out.tickets)
    return out


def label_of(
    ticket: TicketRow,
    head: str,
    event: TicketEvent | None,
    fb: Sequence[Feedback],
    known: set[str] | None,
    confirm_on_close: bool = True,
) -> str | None:
    """One head's human label of one ticket, or None (see the module docstring)."""
    if head in TICKET_FIELDS:
        value = getattr(ticket, head)
        human = event is not None and is_human(event.actor)
        # a person confirming the model's value changes nothing (no event) but leaves feedback
        human = human or any(str(row.corrected) == str(value) for row in fb[-1:])
        if value not in (None, "") and (human or (confirm_on_close and ticket.status in CLOSED)):
            return str(value)
        return None
    for row in reversed(fb):  # newest first; skip values that are no label of this head
        if row.corrected not in (None, "") and (known is None or str(row.corrected) in known):
            return str(row.corrected)
    return None


__all__ = ["final_labels", "label_of", "is_human", "FinalLabels", "TICKET_FIELDS"]
