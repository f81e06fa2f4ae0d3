"""The data of a retrain: the historical export plus the labels agents gave in the store.

Why a new export file rather than an in-memory merge: the challenger then goes through the
very same ``training.pipeline.train(data_path, mapping_path, ...)`` as any bundle, its
manifest records the file's sha256, and a data scientist can open the file and see exactly
what it learnt from.

Which store labels count (a model must not learn from its own guesses) is decided in
:mod:`triage.store.labels` (shared with shadow mode's report): fields last changed by a
person, fields of closed tickets, and feedback rows whose value the head knows; the newest
label wins. Store tickets become rows with id ``store:<id>``; label values are mapped back
through the mapping's ``rename`` table.

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

from triage.store import feedback as feedback_repo
from triage.store.labels import final_labels
from triage.store.tables import TicketRow

from .mapping import Mapping, load_export, read_export
from .pipeline import DEFAULT_FRACTIONS, assign_splits, split_key

log = logging.getLogger(__name__)

HOLDOUT_FILE = "HOLDOUT.json"


@dataclass
class StoreLabels:
    """Rows made from store tickets, and counts for the report."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def ticket_labels(
    session, heads: Iterable[str], known: dict[str, set[str]], *, confirm_on_close: bool = True
) -> StoreLabels:
    """Final human labels per store ticket (rules: :mod:`triage.store.labels`)."""
    found = final_labels(session, heads, known, confirm_on_close=confirm_on_close)
    return StoreLabels(
        rows=[{"ticket": t, "labels": labels} for t, labels in found.tickets.values()], counts=found.counts
    )


def new_labels_since(session, since: datetime | None) -> int:
    """Feedback rows (corrections and confirmations) newer than ``since``: the retrain trigger."""
    return len(feedback_repo.export(session, since=since))


# ---------------------------------------------------------------------------- export
def _inverse_rename(mapping: Mapping, head: str, value: str) -> str:
    back = {v: k for k, v in mapping.labels[head].rename.items()}
    return back.get(value, value)


def store_frame(labels: StoreLabels, mapping: Mapping, columns: Sequence[str]) -> pd.DataFrame:
    """Store tickets as rows of the export's own columns (text, metadata, labels)."""
    meta_attr = {
        "channel": "channel",
        "customer_tier": "customer_tier",
        "affected_service": "affected_service",
        "requester": "requester",
    }
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


def build_export(
    base_path: str | Path, mapping: Mapping, labels: StoreLabels, out_path: str | Path
) -> dict[str, Any]:
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
    side = {
        "base": str(Path(base_path).resolve()),
        "mapping": mapping.source,
        "base_rows": int(len(base)),
        "store_rows": int(len(extra)),
        "store_counts": labels.counts,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
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


def freeze_holdout(
    path: Path,
    data_path: str | Path,
    mapping: Mapping,
    *,
    bundle_id: str,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
) -> dict:
    """Write ``HOLDOUT.json`` from the champion's data unless it exists (frozen: never rewritten)."""
    path = Path(path)
    if path.exists():
        return json.loads(path.read_text("utf-8"))
    data = load_export(data_path, mapping)
    splits = assign_splits(data.texts, fractions or DEFAULT_FRACTIONS, seed)
    keys = sorted({text_hash(t) for t, s in zip(data.texts, splits) if s == "holdout"})
    info = {
        "keys": keys,
        "bundle_id": bundle_id,
        "data": str(data_path),
        "sha256": data.sha256,
        "fractions": list(fractions or DEFAULT_FRACTIONS),
        "seed": seed,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info), "utf-8")
    tmp.replace(path)
    return info


def holdout_mask(texts: Sequence[str], frozen: dict) -> list[bool]:
    keys = set(frozen.get("keys") or [])
    return [text_hash(t) in keys for t in texts]


__all__ = [
    "ticket_labels",
    "new_labels_since",
    "build_export",
    "store_frame",
    "base_export",
    "freeze_holdout",
    "holdout_mask",
    "text_hash",
    "StoreLabels",
]
