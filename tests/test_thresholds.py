"""Thresholds chosen on a calibration split: reachable and unreachable targets, decisions."""

from __future__ import annotations

import numpy as np
import pytest

from triage.thresholds import (
    ThresholdRule,
    applied_metrics,
    choose_thresholds,
    decide,
    precision_coverage,
    reliability,
    wilson_lower,
)

CLASSES = ["a", "b"]


def _calibrated(n: int, seed: int, sharpness: float = 1.0):
    """Labels drawn so that P(true = predicted) equals the stated probability: calibrated."""
    rng = np.random.default_rng(seed)
    p_a = rng.beta(sharpness, sharpness, n)
    y = np.where(rng.random(n) < p_a, "a", "b")
    return y, np.column_stack([p_a, 1 - p_a])


def test_reachable_target_gives_a_threshold_that_holds_on_fresh_data():
    y_cal, p_cal = _calibrated(4000, 0, sharpness=0.3)
    t = choose_thresholds(y_cal, p_cal, CLASSES, ThresholdRule(target_precision=0.95))
    for label in CLASSES:
        # the set above the threshold averages higher probabilities, so it may sit below 0.95
        assert t[label]["apply"] is not None and 0.5 < t[label]["apply"] < 1.0
        assert t[label]["suggest"] <= t[label]["apply"]
        assert t[label]["precision_applied"] >= 0.95
    y_new, p_new = _calibrated(4000, 1, sharpness=0.3)
    m = applied_metrics(y_new, p_new, CLASSES, t)
    assert m["applied_precision"] >= 0.94
    assert 0.2 < m["applied_coverage"] < 1.0


def test_unreachable_target_never_auto_applies():
    # a class that is right only 70 % of the time whatever its score
    rng = np.random.default_rng(2)
    n = 2000
    p = np.column_stack([rng.uniform(0.5, 1.0, n), np.zeros(n)])
    p[:, 1] = 1 - p[:, 0]
    y = np.where(rng.random(n) < 0.7, "a", "b")
    t = choose_thresholds(y, p, CLASSES, ThresholdRule(target_precision=0.95))
    assert t["a"]["apply"] is None
    assert t["a"]["suggest"] is not None  # 0.7 > the 0.6 suggest target
    assert decide("a", 0.999, t).value == "suggest"


def test_too_few_predictions_is_not_enough_evidence():
    y = np.array(["a"] * 10)
    p = np.column_stack([np.full(10, 0.99), np.full(10, 0.01)])
    t = choose_thresholds(y, p, CLASSES, ThresholdRule(min_count=20))
    assert t["a"]["apply"] is None
    assert t["b"] == {
        "apply": None,
        "suggest": None,
        "n_predicted": 0,
        "n_applied": 0,
        "precision_applied": None,
    }


def test_decide_and_policy_overrides():
    t = {"a": {"apply": 0.9, "suggest": 0.5}, "b": {"apply": None, "suggest": 0.7}}
    assert decide("a", 0.95, t).value == "apply"
    assert decide("a", 0.6, t).value == "suggest"
    assert decide("a", 0.4, t).value == "abstain"
    assert decide("b", 0.99, t).value == "suggest"
    assert decide("c", 0.99, t).value == "abstain"  # a class without thresholds
    assert decide("a", 0.95, t, mode="suggest_only").value == "suggest"
    assert decide("a", 0.95, t, mode="off").value == "abstain"
    assert decide("a", 0.6, t, override={"apply": 0.55}).value == "apply"


def test_wilson_bound_is_below_the_point_estimate():
    assert wilson_lower(19, 20, 1.0) < 0.95
    assert wilson_lower(950, 1000, 1.0) == pytest.approx(0.943, abs=0.003)
    assert wilson_lower(0, 0, 1.0) == 0.0


def test_precision_coverage_curve_and_reliability():
    y, p = _calibrated(3000, 3)
    curve = precision_coverage(y, p, CLASSES, points=11)
    assert curve["coverage"][0] == 1.0
    assert all(a >= b for a, b in zip(curve["coverage"], curve["coverage"][1:]))
    rel = reliability(y, p, CLASSES)
    assert rel["ece"] < 0.05
    assert sum(b["count"] for b in rel["bins"]) == 3000
