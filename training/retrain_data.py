"""The data of a retrain: the historical export plus the labels agents gave in the store.

Why a new export file rather than an in-memory merge: the challenger then goes through the
very same ``training.pipeline.train(data_path, mapping_path, ...)`` as any bundle, its
manifest records the file's sha256, and a data scientist can open the file and see exactly
what it learnt from.

Which store labels count (a model must not learn from its own guesses):

* a ticket field (``category``, ``team``, ``priority``, ...) whose last change was made by a
  person: any actor but ``model:<bundle>`` and ``rules...``; a correction through
  ``PATCH /v1/tickets/<id>`` is such a change, and so is a confirmation of a suggestion;
* on a resolved or closed ticket, the fields as they stand (the agent who closed it let
  them be: an implicit confirmation), unless ``confirm_on_close=False``;
* for heads with no ticket field (``type``, ``impact``, ``urgency``), the newest feedback row
  of that head whose corrected value is a class the head knows (the store files a change of
  ``category`` under every head it maps to ``category``; such values are not labels of
  ``type``).

The newest label for a ticket wins: the ticket's current field is the newest by
definition, and feedback rows are taken newest first. Store tickets become rows with id
``store:<id>``; label values are mapped back through the mapping's ``rename`` table.

The frozen holdout: ``<models dir>/HOLDOUT.json`` holds hashes of the champion's holdout
tickets (the same text key as the pipeline's split) and is never rewritten by a retrain,
so every challenger is graded on the same tickets as the champion it wants to replace.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
from sqlalchemy import select

from triage.store import feedback as feedback_repo
from triage.store.tables import Feedback, TicketEvent, TicketRow

from .mapping import Mapping, load_export, read_export
from .pipeline import DEFAULT_FRACTIONS, assign_splits, split_key

log = logging.getLogger(__name__)

TICKET_FIELDS = ("category", "priority", "affected_service", "customer_tier", "team")
MACHINE_ACTORS = ("model:", "rules")
CLOSED = ("resolved", "closed")
HOLDOUT_FILE = "HOLDOUT.json"


@dataclass
class StoreLabels:
    """Rows made from store tickets, and counts for the report."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def _human(actor: str | None) -> bool:
    return bool(actor) and not str(actor).startswith(MACHINE_ACTORS)


def _last_changes(session, ids: Sequence[int]) -> dict[tuple[int, str], TicketEvent]:
    """The newest event per (ticket, field)."""
    out: dict[tuple[int, str], TicketEvent] = {}
    stmt = select(TicketEvent).where(TicketEvent.ticket_id.in_(ids)).order_by(TicketEvent.id)
    for ev in session.scalars(stmt):
        out[(ev.ticket_id, ev.field)] = ev
    return out


def _newest_feedback(session) -> dict[tuple[int, str], Feedback]:
    out: dict[tuple[int, str], Feedback] = {}
    for fb in session.scalars(select(Feedback).order_by(Feedback.at, Feedback.id)):
        out[(fb.ticket_id, fb.head)] = fb  # later rows overwrite: newest wins
    return out


def ticket_labels(session, heads: Iterable[str], known: dict[str, set[str]], *,
                  confirm_on_close: bool = True) -> StoreLabels:
    """Final human labels per store ticket (see the module docstring for the rules)."""
    heads = list(heads)
    fb = _newest_feedback(session)
    ids = sorted({t for t, _ in fb})
    field_heads = [h for h in heads if h in TICKET_FIELDS]
    if field_heads:
        stmt = select(TicketEvent.ticket_id).where(TicketEvent.field.in_(field_heads)).distinct()
        ids = sorted(set(ids) | set(session.scalars(stmt)))
    out = StoreLabels(counts={"tickets_seen": len(ids), "labels": {h: 0 for h in heads},
                              "ignored_feedback": 0})
    if not ids:
        return out
    events = _last_changes(session, ids)
    tickets = {t.id: t for t in session.scalars(select(TicketRow).where(TicketRow.id.in_(ids)))}
    for tid in ids:
        ticket = tickets.get(tid)
        if ticket is None:
            continue
        labels = {}
        for head in heads:
            value = _label_of(ticket, head, events.get((tid, head)), fb.get((tid, head)),
                              known.get(head, set()), confirm_on_close)
            if value is None and (tid, head) in fb:
                out.counts["ignored_feedback"] += 1
            if value is not None:
                labels[head] = value
                out.counts["labels"][head] += 1
        if labels:
            out.rows.append({"ticket": ticket, "labels": labels})
    out.counts["tickets_with_labels"] = len(out.rows)
    return out


def _label_of(ticket: TicketRow, head: str, event: TicketEvent | None, fb: Feedback | None,
              known: set[str], confirm_on_close: bool) -> str | None:
    if head in TICKET_FIELDS:
        value = getattr(ticket, head)
        human = event is not None and _human(event.actor)
        if value not in (None, "") and (human or (confirm_on_close and ticket.status in CLOSED)):
            return str(value)
        return None
    if fb is not None and fb.corrected not in (None, "") and str(fb.corrected) in known:
        return str(fb.corrected)
    return None


def new_labels_since(session, since: datetime | None) -> int:
    """Feedback rows (corrections and confirmations) newer than ``since``: the retrain trigger."""
    return len(feedback_repo.export(session, since=since))


# ---------------------------------------------------------------------------- export
def _inverse_rename(mapping: Mapping, head: str, value: str) -> str:
    back = {v: k for k, v in mapping.labels[head].rename.items()}
    return back.get(value, value)


def store_frame(labels: StoreLabels, mapping: Mapping, columns: Sequence[str]) -> pd.DataFrame:
    """Store tickets as rows of the export's own columns (text, metadata, labels)."""
    meta_attr = {"channel": "channel", "customer_tier": "customer_tier",
                 "affected_service": "affected_service", "requester": "requester"}
    records = []
    for item in labels.rows:
        t: TicketRow = item["ticket"]
        rec: dict[str, Any] = {c: None for c in columns}
        if mapping.subject:
            rec[mapping.subject] = t.subject or ""
            rec[mapping.body] = t.body or ""
        else:
            rec[mapping.body] = f"{t.subject or ''}\n{t.body or ''}".strip()
        for name, col in mapping.metadata.items():
            if name == "id":
                rec[col] = f"store:{t.id}"
            elif name == "created_at":
                rec[col] = t.created_at.isoformat() if t.created_at else None
            elif name in meta_attr:
                rec[col] = getattr(t, meta_attr[name])
        for head, value in item["labels"].items():
            rec[mapping.labels[head].column] = _inverse_rename(mapping, head, value)
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=list(columns))


def build_export(base_path: str | Path, mapping: Mapping, labels: StoreLabels,
                 out_path: str | Path) -> dict[str, Any]:
    """Historical export + store rows → one CSV the pipeline reads with the same mapping."""
    base = read_export(base_path)
    extra = store_frame(labels, mapping, list(base.columns))
    if "id" in mapping.metadata and len(extra):
        col = mapping.metadata["id"]
        base = base[~base[col].astype(str).isin(set(extra[col]))]  # a re-exported ticket: newest wins
    merged = pd.concat([base, extra], ignore_index=True) if len(extra) else base
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(out_path, index=False)
    side = {"base": str(Path(base_path).resolve()), "mapping": mapping.source,
            "base_rows": int(len(base)), "store_rows": int(len(extra)),
            "store_counts": labels.counts,
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out_path.with_suffix(".json").write_text(json.dumps(side, indent=2, default=str), "utf-8")
    return side


def base_export(data_path: str | Path) -> Path:
    """The original historical export behind a (possibly retrain-written) data file."""
    side = Path(data_path).with_suffix(".json")
    if side.exists():
        try:
            return Path(json.loads(side.read_text("utf-8"))["base"])
        except (ValueError, KeyError):
            pass
    return Path(data_path)


# ---------------------------------------------------------------------------- frozen holdout
def text_hash(text: str) -> str:
    return hashlib.sha256(split_key(text).encode()).hexdigest()[:20]


def freeze_holdout(path: Path, data_path: str | Path, mapping: Mapping, *, bundle_id: str,
                   fractions: Sequence[float] | None = None, seed: int = 0) -> dict:
    """Write ``HOLDOUT.json`` from the champion's data unless it exists (frozen: never rewritten)."""
    path = Path(path)
    if path.exists():
        return json.loads(path.read_text("utf-8"))
    data = load_export(data_path, mapping)
    splits = assign_splits(data.texts, fractions or DEFAULT_FRACTIONS, seed)
    keys = sorted({text_hash(t) for t, s in zip(data.texts, splits) if s == "holdout"})
    info = {"keys": keys, "bundle_id": bundle_id, "data": str(data_path), "sha256": data.sha256,
            "fractions": list(fractions or DEFAULT_FRACTIONS), "seed": seed,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info), "utf-8")
    tmp.replace(path)
    return info


def holdout_mask(texts: Sequence[str], frozen: dict) -> list[bool]:
    keys = set(frozen.get("keys") or [])
    return [text_hash(t) in keys for t in texts]


__all__ = ["ticket_labels", "new_labels_since", "build_export", "store_frame", "base_export",
           "freeze_holdout", "holdout_mask", "text_hash", "StoreLabels"]
