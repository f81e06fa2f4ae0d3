"""The model confidence report: may the model act on its own, head by head, class by class?

Two kinds of evidence side by side. From the bundle (measured once, on the
holdout): reliability, the precision–coverage curve, per-class precision and
recall, and the thresholds in force. From production (the store): how often the
model applied / suggested / abstained, how often agents overrode what it applied
or suggested, the tickets it was least sure about, and drift of what arrives.
An admin changing a threshold sees :func:`what_if` first: the precision and
coverage the holdout says the change would bring.

Pure functions take rows and arrays; ``*_from_store`` read them from a session.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from triage.thresholds import decide

from .drift import JS_ALERT, PSI_ALERT, label_drift, text_drift
from .stats import rate, wilson

DECISIONS = ("apply", "suggest", "abstain")


# ----------------------------------------------------------------- holdout (bundle)
def holdout_scores(y_true: Sequence[Any], proba: np.ndarray, classes: Sequence[Any]) -> dict:
    """Per holdout ticket: true label, top-1 label and its probability (what :func:`what_if` needs).

    Kept in the training report so thresholds can be re-tried without the data.
    """
    proba = np.asarray(proba, dtype=float)
    names = [str(c) for c in classes]
    idx = proba.argmax(axis=1) if len(proba) else np.zeros(0, int)
    top = proba[np.arange(len(idx)), idx] if len(proba) else np.zeros(0)
    return {
        "true": [str(v) for v in y_true],
        "predicted": [names[i] for i in idx],
        "probability": [round(float(p), 5) for p in top],
    }


def what_if(
    scores: Mapping[str, Sequence],
    thresholds: Mapping[str, Mapping[str, Any]],
    label: str | None = None,
    apply: float | None = None,
    suggest: float | None = None,
    *,
    mode: str = "auto",
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict:
    """Estimated precision and coverage on the holdout under proposed thresholds.

    ``label``'s thresholds become ``apply`` / ``suggest`` (``None`` = never), on top
    of the bundle's ``thresholds`` and any standing ``overrides``; ``mode`` is the
    head's. Returns the head's applied / suggested / abstained coverage and
    precision, and the same for ``label`` alone (coverage within its predictions).
    """
    proposed = {k: dict(v) for k, v in (overrides or {}).items()}
    if label is not None:
        proposed[str(label)] = {"apply": apply, "suggest": suggest}
    true, pred = list(scores.get("true") or []), list(scores.get("predicted") or [])
    prob = [float(p) for p in scores.get("probability") or []]
    dec = [
        decide(p_lbl, p, thresholds, mode=mode, override=proposed.get(p_lbl)).value
        for p_lbl, p in zip(pred, prob)
    ]
    right = [t == p for t, p in zip(true, pred)]
    out = {"head": _decision_summary(dec, right), "n": len(dec)}
    if label is not None:
        mask = [p == str(label) for p in pred]
        out["class"] = _decision_summary(
            [d for d, m in zip(dec, mask) if m], [r for r, m in zip(right, mask) if m]
        )
        out["class"]["label"] = str(label)
    return out


def _decision_summary(dec: Sequence[str], right: Sequence[bool]) -> dict:
    n = len(dec)
    out: dict[str, Any] = {"n": n}
    for name, key in (("applied", "apply"), ("suggested", "suggest"), ("abstained", "abstain")):
        hits = [r for d, r in zip(dec, right) if d == key]
        out[name] = {
            "n": len(hits),
            "coverage": len(hits) / n if n else 0.0,
            "precision": sum(hits) / len(hits) if hits else None,
        }
    return out


def holdout_view(head_report: Mapping[str, Any], thresholds: Mapping[str, Any]) -> dict:
    """What the page and the export show from the training report of one head."""
    m = head_report.get("metrics") or {}
    per_class = [
        {
            "label": lbl,
            **vals,
            "apply": (thresholds.get(lbl) or {}).get("apply"),
            "suggest": (thresholds.get(lbl) or {}).get("suggest"),
        }
        for lbl, vals in (m.get("per_class") or {}).items()
    ]
    return {
        "n": m.get("n"),
        "accuracy": m.get("accuracy"),
        "macro_f1": m.get("macro_f1"),
        "ece": m.get("ece_15"),
        "reliability": [b for b in m.get("reliability") or [] if b.get("count")],
        "precision_coverage": m.get("precision_coverage") or [],
        "at_thresholds": m.get("at_thresholds") or {},
        "per_class": per_class,
        "what_if_available": bool((head_report.get("holdout_scores") or {}).get("predicted")),
    }


def predicted_distribution(head_report: Mapping[str, Any]) -> dict[str, int]:
    """Holdout predictions per class (confusion column sums): the label-drift reference."""
    conf = (head_report.get("metrics") or {}).get("confusion") or {}
    labels, matrix = conf.get("labels") or [], conf.get("matrix") or []
    if not labels or not matrix:
        return Counter((head_report.get("holdout_scores") or {}).get("predicted") or [])
    cols = np.asarray(matrix, dtype=int).sum(axis=0)
    return {str(lbl): int(c) for lbl, c in zip(labels, cols) if c}


def load_training_report(bundle_path: str | Path | None) -> dict:
    """``report/report.json`` of a bundle; ``{}`` when the bundle has none."""
    if not bundle_path:
        return {}
    path = Path(bundle_path) / "report" / "report.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------- live (pure)
def decision_shares(rows: Iterable[Mapping[str, Any]]) -> dict:
    """Share of predictions applied / suggested / abstained (rows: ``decision``, optional ``n``)."""
    counts: Counter = Counter()
    for r in rows:
        counts[str(r.get("decision") or "abstain")] += int(r.get("n", 1))
    n = sum(counts.values())
    return {"n": n, **{d: {"n": counts.get(d, 0), "share": rate(counts.get(d, 0), n)} for d in DECISIONS}}


def override_rates(
    predictions: Iterable[Mapping[str, Any]],
    feedback: Iterable[Mapping[str, Any]],
    decisions: Sequence[str] = DECISIONS,
) -> list[dict]:
    """Per class and decision: how often a person changed the value the model gave.

    ``predictions`` rows: ``label``, ``decision`` (and a count ``n``, default 1); ``feedback`` rows: ``predicted``,
    ``corrected``, ``decision`` (the decision the model had made). The rate is over
    the predictions made (a value never reviewed counts as kept), with a Wilson
    interval; ``confirmed`` counts explicit agreement (an accepted suggestion).
    Applied and suggested values are what the admin acts on; ``abstain`` rows
    (the withheld guess an agent saw in triage) are kept for context.
    """
    made: Counter = Counter()
    for p in predictions:  # one row per prediction, or aggregated rows with a count ``n``
        if p.get("decision") in decisions:
            made[(str(p.get("label")), str(p.get("decision")))] += int(p.get("n", 1))
    overridden, confirmed = Counter(), Counter()
    for f in feedback:
        key = (str(f.get("predicted")), str(f.get("decision")))
        if key[1] not in decisions:
            continue
        made.setdefault(key, 0)
        if same_value(f.get("corrected"), key[0]):
            confirmed[key] += 1
        else:
            overridden[key] += 1
    out = []
    order = {d: i for i, d in enumerate(DECISIONS)}
    for (label, decision), n in sorted(made.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9))):
        k = overridden[(label, decision)]
        n = max(n, k + confirmed[(label, decision)])
        lo, hi = wilson(k, n)
        out.append(
            {
                "label": label,
                "decision": decision,
                "predictions": n,
                "overridden": k,
                "confirmed": confirmed[(label, decision)],
                "override_rate": rate(k, n),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return out


def same_value(a: Any, b: Any) -> bool:
    """Agreement between a stored field and a label: priority is ``2`` on tickets, ``P2`` as a label."""

    def norm(v: Any) -> str:
        text = str(v).strip()
        return text[1:] if len(text) > 1 and text[0] in "Pp" and text[1:].isdigit() else text

    return norm(a) == norm(b)


def low_confidence(rows: Iterable[Mapping[str, Any]], limit: int = 20) -> list[dict]:
    """The least sure predictions first (rows: ticket_id, subject, label, probability, ...)."""
    rows = [dict(r) for r in rows if r.get("probability") is not None]
    return sorted(rows, key=lambda r: (r["probability"], -int(r.get("ticket_id") or 0)))[:limit]


# ----------------------------------------------------------------- assembling
def head_report(
    head: str,
    training: Mapping[str, Any],
    manifest: Mapping[str, Any],
    live: Mapping[str, Any],
    policy: Mapping[str, Any],
    *,
    psi_alert: float = PSI_ALERT,
    js_alert: float = JS_ALERT,
) -> dict:
    """One head's section: holdout view, live figures, drift, the policy in force."""
    h_train = (training.get("heads") or {}).get(head) or {}
    thresholds = (
        ((manifest.get("heads") or {}).get(head) or {}).get("thresholds") or h_train.get("thresholds") or {}
    )
    drift = {
        "labels": label_drift(predicted_distribution(h_train), live.get("label_counts") or {}, psi_alert),
        "text": text_drift(training.get("text_profile") or {}, live.get("texts") or [], js_alert),
    }
    return {
        "head": head,
        "thresholds": thresholds,
        "policy": dict(policy.get(head) or {"mode": "auto", "classes": {}}),
        "holdout": holdout_view(h_train, thresholds) if h_train else None,
        "live": {
            "decisions": decision_shares(live.get("predictions") or []),
            "overrides": override_rates(live.get("predictions") or [], live.get("feedback") or []),
            "low_confidence": low_confidence(live.get("low") or []),
        },
        "drift": drift,
        "alert": drift["labels"]["alert"] or drift["text"]["alert"],
    }


def build_report(
    manifest: Mapping[str, Any],
    training: Mapping[str, Any],
    live_by_head: Mapping[str, Mapping[str, Any]],
    policy: Mapping[str, Any],
    *,
    generated_at: str,
    window_days: int,
    **alerts: float,
) -> dict:
    """The whole report (the JSON export is exactly this)."""
    heads = [h for h in (manifest.get("heads") or {})]
    return {
        "bundle_id": manifest.get("bundle_id"),
        "generated_at": generated_at,
        "window_days": window_days,
        "heads": {
            h: head_report(h, training, manifest, live_by_head.get(h) or {}, policy, **alerts) for h in heads
        },
    }


# ----------------------------------------------------------------- store
def live_from_store(
    session,
    heads: Sequence[str],
    since: datetime,
    *,
    bundle_id: str | None = None,
    text_limit: int = 500,
    low_limit: int = 20,
) -> dict[str, dict]:
    """Per head since ``since``: prediction counts per (label, decision) aggregated in SQL,
    feedback rows, the least sure open tickets and the texts of recent tickets."""
    from sqlalchemy import func, select

    from triage.store.tables import Feedback, Prediction, TicketRow
    from triage.text import model_text

    out: dict[str, dict] = {
        h: {"predictions": [], "feedback": [], "low": [], "label_counts": Counter()} for h in heads
    }
    recent = [Prediction.created_at >= since] + ([Prediction.bundle_id == bundle_id] if bundle_id else [])
    counts = (
        select(Prediction.head, Prediction.label, Prediction.decision, func.count())
        .where(*recent)
        .group_by(Prediction.head, Prediction.label, Prediction.decision)
    )
    for head, label, decision, n in session.execute(counts):
        if head in out:
            out[head]["predictions"].append({"label": label, "decision": decision, "n": int(n)})
            out[head]["label_counts"][str(label)] += int(n)
    for head in out:
        low = (
            select(
                Prediction.label,
                Prediction.probability,
                Prediction.decision,
                Prediction.ticket_id,
                TicketRow.subject,
                TicketRow.status,
            )
            .join(TicketRow, TicketRow.id == Prediction.ticket_id)
            .where(
                *recent,
                Prediction.head == head,
                Prediction.decision != "apply",
                Prediction.probability.is_not(None),
                TicketRow.status.not_in(("resolved", "closed")),
            )
            .order_by(Prediction.probability, Prediction.id.desc())
            .limit(low_limit)
        )
        out[head]["low"] = [
            {"label": lbl, "probability": p, "decision": d, "ticket_id": tid, "subject": subj, "status": st}
            for lbl, p, d, tid, subj, st in session.execute(low)
        ]
    fb = select(
        Feedback.head, Feedback.predicted, Feedback.corrected, Feedback.decision, Feedback.ticket_id
    ).where(Feedback.at >= since)
    if bundle_id:
        fb = fb.where(Feedback.bundle_id == bundle_id)
    for head, predicted, corrected, decision, tid in session.execute(fb):
        if head in out:
            out[head]["feedback"].append(
                {"predicted": predicted, "corrected": corrected, "decision": decision, "ticket_id": tid}
            )
    texts = [
        model_text(s or "", b or "")
        for s, b in session.execute(
            select(TicketRow.subject, TicketRow.body)
            .where(TicketRow.created_at >= since)
            .order_by(TicketRow.id.desc())
            .limit(text_limit)
        )
    ]
    for entry in out.values():
        entry["texts"] = texts
    return out
