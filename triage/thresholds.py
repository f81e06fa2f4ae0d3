"""Honest confidence: per-class apply/suggest thresholds, decisions and the curves that judge them.

A model may set a field without a human only where, on data it was not fitted on
(the calibration split), predictions of that class above a threshold were right
often enough. Precision measured on a few dozen tickets is noisy, so a threshold
counts only with a minimum number of predictions above it and when the lower
Wilson bound of their precision (not the point estimate) reaches the target:
that is what keeps the holdout precision from falling under the target. A class
whose target cannot be reached never auto-applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .ticket import Decision

# Defaults, documented in one place so the CLI and the manifest agree.
TARGET_PRECISION = 0.95
SUGGEST_PRECISION = 0.60
MIN_COUNT = 20  # predictions at or above an apply threshold, on the calibration split
SUGGEST_MIN_COUNT = 5
Z = 1.0  # one-sided Wilson bound (z=1 ≈ 84 % confidence)
# a head never applies when its calibration split (rows no fit has seen) is too small to show
# the target at 95 % one-sided confidence even if every prediction were right (0.95 → 52 rows)
Z_SUPPORT = 1.645


@dataclass(frozen=True)
class ThresholdRule:
    """How thresholds are chosen; stored in the manifest so a bundle says what it promised."""

    target_precision: float = TARGET_PRECISION
    suggest_precision: float = SUGGEST_PRECISION
    min_count: int = MIN_COUNT
    suggest_min_count: int = SUGGEST_MIN_COUNT
    z: float = Z

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def wilson_lower(correct: np.ndarray | float, n: np.ndarray | float, z: float) -> np.ndarray:
    """Lower Wilson score bound of a proportion (vectorised); 0 where ``n`` is 0."""
    correct = np.asarray(correct, dtype=float)
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 1.0)
    p = correct / safe
    denom = 1.0 + z * z / safe
    centre = p + z * z / (2 * safe)
    margin = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(n > 0, (centre - margin) / denom, 0.0)


def _lowest_threshold(
    probs: np.ndarray, correct: np.ndarray, target: float, min_count: int, z: float
) -> tuple[float | None, int, float | None]:
    """Lowest p such that predictions with probability >= p meet the target (bound and count).

    Returns (threshold, count at or above it, point precision there); ``None`` when unreachable.
    """
    if probs.size == 0:
        return None, 0, None
    order = np.argsort(-probs, kind="stable")
    p_sorted, c_sorted = probs[order], correct[order]
    n = np.arange(1, p_sorted.size + 1)
    k = np.cumsum(c_sorted)
    # a threshold can only sit where the next probability is strictly lower (ties go together)
    cut = np.append(p_sorted[1:] < p_sorted[:-1], True)
    ok = cut & (n >= min_count) & (wilson_lower(k, n, z) >= target)
    if not ok.any():
        return None, 0, None
    i = int(np.flatnonzero(ok)[-1])
    return float(p_sorted[i]), int(n[i]), float(k[i] / n[i])


def min_rows_for(target: float, z: float = Z_SUPPORT) -> int:
    """Fewest predictions that could show ``target`` precision at all: even with every one
    right, the one-sided Wilson bound (``z``) of n/n reaches ``target`` only from this n."""
    if target <= 0:
        return 1
    if target >= 1:
        return 10**9
    return int(math.ceil(z * z * target / (1.0 - target)))


def choose_thresholds(
    y_true: Sequence[Any],
    proba: np.ndarray,
    classes: Sequence[Any],
    rule: ThresholdRule | None = None,
    pred_idx: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Per predicted class: ``apply`` and ``suggest`` thresholds (``None`` = never), chosen on
    the rows given as ``y_true`` and the head's ``proba`` (columns = ``classes``); ``pred_idx``
    is the column of the reported label when the head's decision rule is not the arg-max.
    """
    rule = rule or ThresholdRule()
    classes = [str(c) for c in classes]
    y = np.asarray([str(v) for v in y_true])
    pred_idx = np.asarray(proba).argmax(axis=1) if pred_idx is None else np.asarray(pred_idx)
    top = np.asarray(proba)[np.arange(len(y)), pred_idx]
    out: dict[str, dict[str, Any]] = {}
    for j, label in enumerate(classes):
        mask = pred_idx == j
        probs, correct = top[mask], (y[mask] == label).astype(float)
        apply_t, n_apply, prec = _lowest_threshold(
            probs, correct, rule.target_precision, rule.min_count, rule.z
        )
        sugg_t, _, _ = _lowest_threshold(probs, correct, rule.suggest_precision, rule.suggest_min_count, 0.0)
        if apply_t is not None and (sugg_t is None or sugg_t > apply_t):
            sugg_t = apply_t
        out[label] = {
            "apply": apply_t,
            "suggest": sugg_t,
            "n_predicted": int(mask.sum()),
            "n_applied": n_apply,
            "precision_applied": prec,
        }
    return out


def decide(
    label: str,
    probability: float,
    thresholds: Mapping[str, Mapping[str, Any]],
    *,
    mode: str = "auto",
    override: Mapping[str, Any] | None = None,
) -> Decision:
    """apply / suggest / abstain for one predicted label.

    ``mode`` and ``override`` come from an admin policy: ``suggest_only`` never applies,
    ``off`` always abstains, and ``override`` replaces this class's thresholds.
    """
    if mode == "off":
        return Decision.ABSTAIN
    t = dict(thresholds.get(str(label)) or {})
    if override:
        t.update({k: v for k, v in override.items() if k in ("apply", "suggest")})
    apply_t, suggest_t = t.get("apply"), t.get("suggest")
    if mode != "suggest_only" and apply_t is not None and probability >= apply_t:
        return Decision.APPLY
    if suggest_t is not None and probability >= suggest_t:
        return Decision.SUGGEST
    if mode == "suggest_only" and apply_t is not None and probability >= apply_t:
        return Decision.SUGGEST
    return Decision.ABSTAIN


def decisions(
    y_pred: Sequence[str], top_proba: np.ndarray, thresholds: Mapping[str, Mapping[str, Any]]
) -> list[Decision]:
    return [decide(str(lbl), float(p), thresholds) for lbl, p in zip(y_pred, top_proba)]


def applied_metrics(
    y_true: Sequence[Any],
    proba: np.ndarray,
    classes: Sequence[Any],
    thresholds: Mapping[str, Mapping[str, Any]],
) -> dict[str, float | int | None]:
    """Precision and coverage of what would be applied / suggested on a split."""
    y = np.asarray([str(v) for v in y_true])
    classes = np.asarray([str(c) for c in classes])
    idx = np.asarray(proba).argmax(axis=1)
    pred, top = classes[idx], np.asarray(proba)[np.arange(len(y)), idx]
    dec = np.asarray([d.value for d in decisions(pred, top, thresholds)])
    right = pred == y
    out: dict[str, float | int | None] = {"n": int(len(y))}
    for name, mask in (
        ("applied", dec == "apply"),
        ("suggested", dec == "suggest"),
        ("applied_or_suggested", dec != "abstain"),
    ):
        out[f"{name}_count"] = int(mask.sum())
        out[f"{name}_coverage"] = float(mask.mean()) if len(y) else 0.0
        out[f"{name}_precision"] = float(right[mask].mean()) if mask.any() else None
    return out


def precision_coverage(
    y_true: Sequence[Any], proba: np.ndarray, classes: Sequence[Any], points: int = 101
) -> dict[str, list[float]]:
    """Precision of the top prediction vs the share of tickets kept, over one global threshold."""
    y = np.asarray([str(v) for v in y_true])
    classes = np.asarray([str(c) for c in classes])
    proba = np.asarray(proba)
    idx = proba.argmax(axis=1)
    top, right = proba[np.arange(len(y)), idx], classes[idx] == y
    ts = np.linspace(0.0, 1.0, points)
    cov, prec = [], []
    for t in ts:
        m = top >= t
        cov.append(float(m.mean()) if len(y) else 0.0)
        prec.append(float(right[m].mean()) if m.any() else float("nan"))
    return {"threshold": ts.tolist(), "coverage": cov, "precision": prec}


def reliability(
    y_true: Sequence[Any], proba: np.ndarray, classes: Sequence[Any], n_bins: int = 15
) -> dict[str, Any]:
    """Top-label reliability bins and the expected calibration error over them (ECE)."""
    y = np.asarray([str(v) for v in y_true])
    classes = np.asarray([str(c) for c in classes])
    proba = np.asarray(proba)
    idx = proba.argmax(axis=1)
    conf, right = proba[np.arange(len(y)), idx], (classes[idx] == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = which == b
        if not m.any():
            continue
        acc, mean_conf = float(right[m].mean()), float(conf[m].mean())
        ece += m.mean() * abs(acc - mean_conf)
        bins.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": int(m.sum()),
                "confidence": mean_conf,
                "accuracy": acc,
            }
        )
    return {"ece": float(ece) if len(y) else math.nan, "bins": bins}
