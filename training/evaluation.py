"""Holdout metrics and the evaluation report a data scientist and an admin can trust.

Everything here is a pure function of labels and probabilities, so the pipeline,
``triage evaluate`` and the notebooks compute the same numbers the same way.
Plots and the HTML page live in :mod:`training.report_page`; this module
re-exports :func:`write_report` so callers need one import.

Why these metrics: macro-F1 treats a rare team like a big one (what a help desk
cares about when routing); ECE and the reliability diagram say whether a "0.9"
means 90 %; the precision–coverage curve and the counts at the chosen
thresholds say how much work auto-apply would take off agents, and at what
error rate.

The report dict (``report.json`` is exactly this, JSON-serialised)::

    {
      "bundle_id": str, "created_at": ISO-8601 str,
      "data": {"path", "sha256", "rows", "split": {"train", "calibration", "holdout"}, ...},
      "heads": {
        head: {
          "metrics": head_metrics(...),            # on the holdout split
          "reference": {"name": "tfidf+linearsvc", "accuracy", "macro_f1", "n"},
          "candidates": {name: macro_f1, ...},     # e.g. tfidf / embedding / combined, on the
                                                   # calibration split (where the winner is chosen)
          "candidates_holdout": {name: macro_f1},  # optional: the same candidates on the holdout
          "chosen": name,
          "thresholds": {label: {"apply": p, "suggest": p}},
        }, ...
      },
      "dropped_rows": {reason: count, ...},        # never drop silently
    }

Unknown extra keys are kept and ignored. ``head_metrics`` returns::

    {"n", "accuracy", "macro_f1",
     "per_class": {label: {"precision", "recall", "f1", "support"}},
     "confusion": {"labels": [...], "matrix": [[int]]},     # rows = true, columns = predicted
     "ece_15": float, "reliability": [{"lower", "upper", "count", "mean_confidence", "accuracy"}],
     "precision_coverage": [{"threshold", "coverage", "precision", "n"}],  # coverage decreasing
     "at_thresholds": {"applied": {"coverage", "precision", "n"}, "suggested": {...},
                       "abstained": {...}, "per_class": {label: {"applied_n", "applied_precision"}}}}

Threshold semantics are serving's (:func:`triage.thresholds.decide`): a prediction's top-1
probability ``p`` for class ``c`` is *applied* when ``p >= thresholds[c]["apply"]``, else
*suggested* when ``p >= thresholds[c]["suggest"]``, else the model *abstains*; a ``None``
or missing threshold never fires. For each decision, ``precision`` is the accuracy
of the top-1 label on those rows (for "abstained": how good the withheld guesses were).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from triage.thresholds import decide

from .apply_reason import no_apply_reason

__all__ = [
    "head_metrics",
    "reference_metrics",
    "expected_calibration_error",
    "reliability_bins",
    "precision_coverage",
    "decisions",
    "at_thresholds",
    "render_text_summary",
    "write_report",
]

_MAX_CURVE_POINTS = 201


def _labels_in_order(classes: Sequence[str], y_true: Sequence[str], y_pred: Sequence[str]) -> list[str]:
    """The model's class order first, then any holdout label the model never saw."""
    seen = set(classes)
    extra = sorted({str(y) for y in y_true} - seen)
    return [str(c) for c in classes] + extra


def _top1(
    proba: np.ndarray, classes: Sequence[str], pred_idx: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The reported label (``pred_idx``, else the arg-max) and its calibrated probability."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"proba must be (n, {len(classes)}) to match classes, got {proba.shape}")
    idx = proba.argmax(axis=1) if pred_idx is None else np.asarray(pred_idx, dtype=int)
    return np.asarray([str(c) for c in classes], dtype=object)[idx], proba[np.arange(len(idx)), idx]


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Equal-width bins over [0, 1]; bin i holds (i/n, (i+1)/n], the first also holds 0."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    idx = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        bins.append(
            {
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "count": count,
                "mean_confidence": float(confidence[mask].mean()) if count else None,
                "accuracy": float(correct[mask].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Sum over bins of (bin share) × |accuracy − mean confidence| of the top-1 probability."""
    n = len(confidence)
    if n == 0:
        return float("nan")
    return float(
        sum(
            b["count"] / n * abs(b["accuracy"] - b["mean_confidence"])
            for b in reliability_bins(confidence, correct, n_bins)
            if b["count"]
        )
    )


def precision_coverage(confidence: np.ndarray, correct: np.ndarray) -> list[dict]:
    """Precision of the predictions kept by a global threshold, as the threshold sweeps.

    One point per distinct confidence (ties kept together: a threshold cannot split
    them), thinned to at most ~200 points. Ordered by decreasing coverage, i.e.
    increasing threshold; coverage never increases along the list.
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    n = len(confidence)
    if n == 0:
        return []
    order = np.argsort(-confidence, kind="stable")
    conf_sorted, hits = confidence[order], np.cumsum(correct[order])
    # last index of each run of equal confidence = the rows a threshold at that value keeps
    ends = np.flatnonzero(np.r_[conf_sorted[1:] != conf_sorted[:-1], True])
    if len(ends) > _MAX_CURVE_POINTS:
        pick = np.unique(np.linspace(0, len(ends) - 1, _MAX_CURVE_POINTS).round().astype(int))
        ends = ends[pick]
    points = [
        {
            "threshold": float(conf_sorted[e]),
            "coverage": (e + 1) / n,
            "precision": float(hits[e] / (e + 1)),
            "n": int(e + 1),
        }
        for e in ends
    ]
    return points[::-1]


def decisions(
    pred: Sequence[str], confidence: np.ndarray, thresholds: Mapping[str, Mapping[str, float | None]]
) -> np.ndarray:
    """``apply`` / ``suggest`` / ``abstain`` per row, by the serving rule (:func:`triage.thresholds.decide`)."""
    return np.asarray(
        [decide(str(label), float(p), thresholds).value for label, p in zip(pred, confidence)], dtype=object
    )


def at_thresholds(
    pred: Sequence[str],
    confidence: np.ndarray,
    correct: np.ndarray,
    thresholds: Mapping[str, Mapping[str, float]],
) -> dict:
    """Coverage and precision of each decision, overall and applied per class."""
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    dec = decisions(pred, confidence, thresholds)
    out = {}
    for name, key in (("applied", "apply"), ("suggested", "suggest"), ("abstained", "abstain")):
        mask = dec == key
        k = int(mask.sum())
        out[name] = {
            "n": k,
            "coverage": k / n if n else 0.0,
            "precision": float(correct[mask].mean()) if k else None,
        }
    pred = np.asarray(pred, dtype=object)
    per_class = {}
    for label in sorted(set(pred.tolist()) | set(thresholds)):
        mask = (dec == "apply") & (pred == label)
        k = int(mask.sum())
        per_class[str(label)] = {
            "applied_n": k,
            "applied_precision": float(correct[mask].mean()) if k else None,
        }
    out["per_class"] = per_class
    return out


def head_metrics(
    y_true: Sequence[str],
    proba: np.ndarray,
    classes: Sequence[str],
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    *,
    n_bins: int = 15,
    pred_idx: np.ndarray | None = None,
) -> dict:
    """All holdout metrics of one head (see the module docstring for the shape).

    ``pred_idx``: the column of the label the head reports, when its decision rule is not the
    arg-max (see :class:`triage.classifiers.TextHead`); confidence is that label's probability.
    """
    y_true = np.asarray([str(y) for y in y_true], dtype=object)
    pred, conf = _top1(proba, classes, pred_idx)
    correct = pred == y_true
    labels = _labels_in_order(classes, y_true, pred)
    present = [lab for lab in labels if lab in set(y_true) | set(pred)]
    n = len(y_true)
    if n == 0:  # a head with no labelled holdout rows: say so, do not crash the report
        prec = rec = f1 = support = [0] * len(labels)
        matrix = [[0] * len(labels) for _ in labels]
    else:
        prec, rec, f1, support = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
        matrix = confusion_matrix(y_true, pred, labels=labels).tolist()
    return {
        "n": int(n),
        "accuracy": float(correct.mean()) if n else float("nan"),
        "macro_f1": float(f1_score(y_true, pred, labels=present, average="macro", zero_division=0))
        if n
        else float("nan"),
        "per_class": {
            lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for lab, p, r, f, s in zip(labels, prec, rec, f1, support)
        },
        "confusion": {"labels": labels, "matrix": matrix},
        f"ece_{n_bins}": expected_calibration_error(conf, correct, n_bins),
        "reliability": reliability_bins(conf, correct, n_bins),
        "precision_coverage": precision_coverage(conf, correct),
        "at_thresholds": at_thresholds(pred, conf, correct, thresholds or {}),
    }


def reference_metrics(y_true: Sequence[str], y_pred: Sequence[str], *, name: str = "tfidf+linearsvc") -> dict:
    """Accuracy and macro-F1 of a model without probabilities (the LinearSVC reference)."""
    y_true = [str(y) for y in y_true]
    y_pred = [str(y) for y in y_pred]
    n = len(y_true)
    return {
        "name": name,
        "n": n,
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if n else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)) if n else float("nan"),
    }


def _fmt(x, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def render_text_summary(report: Mapping) -> str:
    """A compact table per head for the terminal (``triage train`` / ``triage evaluate``)."""
    created = report.get("created_at")
    lines = [f"bundle {report.get('bundle_id', '?')}" + (f"  ({created})" if created else "")]
    data = report.get("data") or {}
    if data:
        lines.append(f"data {data.get('path', '?')}  rows {data.get('rows', '?')}")
    header = (
        f"{'head':<18}{'model':<12}{'n':>7}{'acc':>8}{'macroF1':>9}{'ref F1':>8}"
        f"{'ECE':>7}{'applied':>9}{'prec@app':>9}{'suggest':>9}"
    )
    lines += ["", header, "-" * len(header)]
    for head, h in (report.get("heads") or {}).items():
        m = h.get("metrics") or {}
        at = m.get("at_thresholds") or {}
        lines.append(
            f"{head[:17]:<18}{str(h.get('chosen', '-'))[:11]:<12}{m.get('n', 0):>7}"
            f"{_fmt(m.get('accuracy')):>8}{_fmt(m.get('macro_f1')):>9}"
            f"{_fmt((h.get('reference') or {}).get('macro_f1')):>8}{_fmt(m.get('ece_15')):>7}"
            f"{_fmt((at.get('applied') or {}).get('coverage'), True):>9}"
            f"{_fmt((at.get('applied') or {}).get('precision')):>9}"
            f"{_fmt((at.get('suggested') or {}).get('coverage'), True):>9}"
        )
        why = no_apply_reason(h, report.get("config") or {})
        if why:
            lines.append(" " * 18 + f"applies nothing: {why}")
        cands, held = h.get("candidates") or {}, h.get("candidates_holdout") or {}
        if cands:
            lines.append(
                " " * 18
                + "candidates (calibration"
                + ("/holdout" if held else "")
                + "): "
                + ", ".join(
                    f"{k} {_fmt(v)}" + (f"/{_fmt(held[k])}" if k in held else "") for k, v in cands.items()
                )
            )
    dropped = {k: v for k, v in (report.get("dropped_rows") or {}).items() if v}
    if dropped:
        lines += ["", "dropped rows: " + ", ".join(f"{k} {v}" for k, v in dropped.items())]
    notes = data.get("warnings") or []
    if notes:  # how the export was read where it could mislead (report["data"]["warnings"])
        lines += ["", "warnings about the export:"] + [f"  - {n['message']}" for n in notes]
    return "\n".join(lines)


def write_report(report: Mapping, out_dir):
    """Write report.json, plots and report.html into ``out_dir``; returns {name: Path}.

    Names: ``json``, ``html`` and ``<head>.<reliability|precision_coverage|confusion>.<png|svg>``
    (files ``<head>-reliability.svg`` etc.; head names are made file-safe).
    """
    from .report_page import write_report as _write  # matplotlib only when writing

    return _write(report, out_dir)
