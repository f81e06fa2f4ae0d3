"""Holdout metrics on inputs whose answers are known, and the report files they produce."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.evaluation import (
    expected_calibration_error,
    head_metrics,
    precision_coverage,
    reference_metrics,
    render_text_summary,
    reliability_bins,
    write_report,
)


def _calibrated(n: int = 20000, seed: int = 0):
    """Top-1 confidence drawn uniformly, correct with exactly that probability."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.uniform(size=n) < conf
    return conf, correct


def test_ece_of_calibrated_predictions_is_near_zero():
    conf, correct = _calibrated()
    assert expected_calibration_error(conf, correct) < 0.015


def test_ece_of_overconfident_predictions_is_the_known_gap():
    conf = np.full(1000, 0.9)
    correct = np.r_[np.ones(600, bool), np.zeros(400, bool)]  # 60 % right at 90 % confidence
    assert expected_calibration_error(conf, correct) == pytest.approx(0.3)


def test_reliability_bins_are_equal_width_and_cover_the_edges():
    bins = reliability_bins(np.array([0.0, 1 / 15, 0.5, 1.0]), np.array([1, 1, 0, 1]))
    assert len(bins) == 15
    assert bins[0]["lower"] == 0 and bins[-1]["upper"] == 1
    assert bins[0]["count"] == 2 and bins[-1]["count"] == 1  # 0 and 1/15 in the first bin
    assert sum(b["count"] for b in bins) == 4
    assert bins[3]["mean_confidence"] is None


def test_precision_coverage_is_monotonic_and_keeps_ties_together():
    conf = np.array([0.9, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 1, 0, 1, 0], bool)
    curve = precision_coverage(conf, correct)
    cov = [p["coverage"] for p in curve]
    assert cov == sorted(cov, reverse=True)
    assert [p["threshold"] for p in curve] == sorted(p["threshold"] for p in curve)
    assert curve[0]["coverage"] == 1 and curve[0]["precision"] == pytest.approx(4 / 6)
    assert curve[-1] == {"threshold": 0.9, "coverage": 2 / 6, "precision": 1.0, "n": 2}


def test_precision_coverage_of_a_well_ranked_model_falls_with_coverage():
    conf, correct = _calibrated(5000)
    curve = precision_coverage(conf, correct)
    assert len(curve) <= 202
    assert curve[-1]["precision"] > curve[0]["precision"] + 0.1


def test_head_metrics_counts_at_thresholds():
    classes = ["a", "b"]
    proba = np.array([[0.97, 0.03], [0.96, 0.04], [0.7, 0.3], [0.2, 0.8], [0.45, 0.55], [0.6, 0.4]])
    y = ["a", "b", "a", "b", "a", "a"]
    thr = {"a": {"apply": 0.95, "suggest": 0.65}, "b": {"apply": None, "suggest": 0.6}}
    m = head_metrics(y, proba, classes, thr)
    at = m["at_thresholds"]
    assert at["applied"] == {"n": 2, "coverage": pytest.approx(2 / 6), "precision": 0.5}
    assert at["suggested"]["n"] == 2 and at["suggested"]["precision"] == 1.0  # rows 3 and 4
    assert at["abstained"]["n"] == 2 and at["abstained"]["precision"] == 0.5  # rows 5 and 6
    assert at["per_class"]["a"]["applied_n"] == 2 and at["per_class"]["b"]["applied_n"] == 0
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == {"labels": ["a", "b"], "matrix": [[3, 1], [1, 1]]}
    assert m["per_class"]["b"]["support"] == 2
    assert 0 <= m["ece_15"] <= 1 and len(m["reliability"]) == 15


def test_head_metrics_counts_an_unseen_holdout_label_as_an_error():
    m = head_metrics(["a", "zzz"], np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"], {})
    assert m["confusion"]["labels"] == ["a", "b", "zzz"]
    assert m["accuracy"] == 0.5


def test_head_metrics_of_an_empty_holdout_is_empty_not_an_error():
    m = head_metrics([], np.zeros((0, 2)), ["a", "b"], {})
    assert m["n"] == 0 and m["precision_coverage"] == [] and m["at_thresholds"]["applied"]["n"] == 0


def test_head_metrics_refuses_mismatched_columns():
    with pytest.raises(ValueError, match="match classes"):
        head_metrics(["a"], np.array([[1.0, 0.0, 0.0]]), ["a", "b"], {})


def _report():
    classes = ["<script>alert(1)</script>", "$5 refund", "ok"]
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=60)
    y = [classes[i] for i in rng.integers(0, 3, 60)]
    thr = {c: {"apply": 0.8, "suggest": 0.5} for c in classes}
    pred = [classes[i] for i in proba.argmax(1)]
    return {
        "bundle_id": "b<1>",
        "created_at": "2026-01-01T00:00:00Z",
        "data": {"path": "x.csv", "rows": 60, "sha256": "ab"},
        "heads": {
            "team": {
                "metrics": head_metrics(y, proba, classes, thr),
                "reference": reference_metrics(y, pred),
                "candidates": {"tfidf": 0.4, "embedding": float("nan")},
                "chosen": "tfidf",
                "thresholds": thr,
            }
        },
        "dropped_rows": {"missing text": 2},
    }


def test_write_report_writes_every_file_and_escapes_labels(tmp_path):
    paths = write_report(_report(), tmp_path / "r")
    for kind in ("reliability", "precision_coverage", "confusion"):
        for ext in ("png", "svg"):
            assert paths[f"team.{kind}.{ext}"].stat().st_size > 1000
    page = paths["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "b&lt;1&gt;" in page and "http" not in page.replace("http-equiv", "")  # no CDN
    data = json.loads(paths["json"].read_text())  # strict JSON: NaN written as null
    assert data["heads"]["team"]["candidates"]["embedding"] is None
    assert data["heads"]["team"]["metrics"]["n"] == 60


def test_text_summary_names_heads_and_reference():
    text = render_text_summary(_report())
    assert "team" in text and "tfidf" in text and "missing text 2" in text
