"""The report library's pure functions, on data small enough to check by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from xml.dom import minidom

import numpy as np
import pytest

from triage import plots
from triage.reports import confidence, drift, knowledge, sla
from triage.reports.stats import newcombe_diff, wilson
from triage.store import policies

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


# ----------------------------------------------------------------- intervals
def test_wilson_matches_newcombes_published_values():
    lo, hi = wilson(81, 263)  # Newcombe (1998), Table I: 0.2553 to 0.3662
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and 0.27 < hi < 0.28
    lo, hi = wilson(10, 10)
    assert hi == pytest.approx(1.0) and 0.72 < lo < 0.73


def test_newcombe_difference_matches_the_paper():
    d, lo, hi = newcombe_diff(56, 70, 48, 80)  # Newcombe (1998), method 10: 0.0524 to 0.3339
    assert round(d, 4) == 0.2 and (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    assert newcombe_diff(1, 0, 1, 5) == (None, -1.0, 1.0)


# ----------------------------------------------------------------- drift
def test_label_drift_alerts_on_a_shifted_mix_only():
    reference = {"network": 500, "access": 300, "hardware": 200}
    same = {"network": 51, "access": 29, "hardware": 20}
    shifted = {"network": 10, "access": 20, "hardware": 70}
    assert not drift.label_drift(reference, same)["alert"]
    out = drift.label_drift(reference, shifted)
    assert out["alert"] and out["value"] > drift.PSI_ALERT
    assert not drift.label_drift(reference, {"hardware": 5})["alert"]  # too few to say


def test_psi_and_js_basics():
    assert drift.psi({"a": 1, "b": 1}, {"a": 5, "b": 5}) == pytest.approx(0.0)
    assert drift.js_divergence({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert drift.js_divergence({"a": 2, "b": 2}, {"a": 1, "b": 1}) == pytest.approx(0.0)


def test_text_drift_alerts_when_tickets_talk_about_something_else():
    rng = np.random.default_rng(0)
    vpn = ["vpn", "connection", "drops", "network", "client", "tunnel", "office", "wifi"]
    pay = ["invoice", "payroll", "salary", "expense", "refund", "receipt", "budget", "payment"]

    def texts(words, n):
        return [" ".join(rng.choice(words, 12)) for _ in range(n)]

    profile = drift.text_profile(texts(vpn, 200))
    assert not drift.text_drift(profile, texts(vpn, 60))["alert"]
    out = drift.text_drift(profile, texts(pay, 60))
    assert out["alert"] and out["value"] > 0.5 and "invoice" in out["top_new"]
    assert not drift.text_drift(profile, texts(pay, 5))["alert"]  # too few tickets


# ----------------------------------------------------------------- confidence
def test_override_rates_per_class_and_decision():
    preds = (
        [{"label": "network", "decision": "apply"}] * 8
        + [{"label": "network", "decision": "suggest"}] * 4
        + [{"label": "access", "decision": "abstain"}] * 3
    )
    feedback = [
        {"predicted": "network", "corrected": "access", "decision": "apply"},
        {"predicted": "network", "corrected": "network", "decision": "suggest"},
        {"predicted": "network", "corrected": "hardware", "decision": "suggest"},
        {"predicted": "P2", "corrected": "2", "decision": "suggest"},
    ]
    rows = {
        (r["label"], r["decision"]): r
        for r in confidence.override_rates(preds, feedback, ("apply", "suggest"))
    }
    assert rows[("network", "apply")]["override_rate"] == pytest.approx(1 / 8)
    assert rows[("network", "suggest")]["overridden"] == 1
    assert rows[("network", "suggest")]["confirmed"] == 1
    assert rows[("network", "suggest")]["override_rate"] == pytest.approx(1 / 4)
    assert ("access", "abstain") not in rows
    assert rows[("P2", "suggest")]["confirmed"] == 1  # a priority label agrees with its number


def test_what_if_against_a_hand_computed_case():
    scores = {
        "true": ["a", "a", "a", "b", "b", "a"],
        "predicted": ["a", "a", "a", "a", "b", "b"],
        "probability": [0.95, 0.85, 0.75, 0.65, 0.9, 0.55],
    }
    thresholds = {"a": {"apply": 0.9, "suggest": 0.5}, "b": {"apply": 0.8, "suggest": 0.5}}
    base = confidence.what_if(scores, thresholds)
    # applied: a@0.95 (right), b@0.9 (right) → 2/6, precision 1
    assert base["head"]["applied"]["n"] == 2 and base["head"]["applied"]["precision"] == 1.0
    # lower a's apply threshold to 0.7: a@0.95, a@0.85, a@0.75 right, b@0.9 right → 4/6, 100 %
    out = confidence.what_if(scores, thresholds, "a", 0.7, 0.5)
    assert out["head"]["applied"]["coverage"] == pytest.approx(4 / 6)
    assert out["head"]["applied"]["precision"] == 1.0
    assert out["class"]["applied"]["n"] == 3 and out["class"]["n"] == 4
    # to 0.6: the wrong a@0.65 is applied too → 5/6 applied at 4/5 precision
    out = confidence.what_if(scores, thresholds, "a", 0.6, 0.5)
    assert out["head"]["applied"]["precision"] == pytest.approx(0.8)
    assert out["class"]["applied"]["precision"] == pytest.approx(0.75)
    # apply above 1 and the head off
    assert confidence.what_if(scores, thresholds, "a", 1.01, 0.5)["class"]["applied"]["n"] == 0
    off = confidence.what_if(scores, thresholds, mode="off")
    assert off["head"]["abstained"]["coverage"] == 1.0


def test_holdout_scores_and_decision_shares():
    proba = np.array([[0.9, 0.1], [0.3, 0.7]])
    s = confidence.holdout_scores(["x", "x"], proba, ["x", "y"])
    assert s == {"true": ["x", "x"], "predicted": ["x", "y"], "probability": [0.9, 0.7]}
    shares = confidence.decision_shares([{"decision": "apply"}] * 3 + [{"decision": "abstain"}])
    assert shares["apply"]["share"] == 0.75 and shares["suggest"]["n"] == 0


# ----------------------------------------------------------------- knowledge
def test_deflection_against_control():
    out = knowledge.deflection(
        {
            "treatment": {"visits": 70, "submitted": 14, "solved": 30},
            "control": {"visits": 80, "submitted": 32},
        }
    )
    assert out["treatment"]["rate"] == pytest.approx(56 / 70)
    assert out["control"]["rate"] == pytest.approx(48 / 80)
    assert round(out["difference"]["ci_low"], 4) == 0.0524 and out["difference"]["significant"]
    empty = knowledge.deflection({})
    assert empty["difference"]["value"] is None and not empty["difference"]["significant"]


def test_knowledge_gaps_cluster_the_uncovered_tickets():
    rng = np.random.default_rng(1)
    a, b = np.eye(8)[0], np.eye(8)[1]
    vecs = [a + rng.normal(0, 0.05, 8) for _ in range(4)] + [b + rng.normal(0, 0.05, 8) for _ in range(3)]
    vecs.append(np.eye(8)[2])
    tickets = [
        {"id": i, "subject": f"t{i}", "text": "printer toner" if i < 4 else "payroll slip"} for i in range(8)
    ]
    scores = [0.1] * 7 + [0.9]  # the last one has a good article
    gaps = knowledge.knowledge_gaps(tickets, np.asarray(vecs), scores, 0.5, k=2)
    assert [g["size"] for g in gaps] == [4, 3]
    assert {e["id"] for e in gaps[0]["examples"]} <= {0, 1, 2, 3}
    assert "printer" in gaps[0]["label"] or "toner" in gaps[0]["label"]
    assert knowledge.knowledge_gaps(tickets, np.asarray(vecs), [0.9] * 8, 0.5) == []


# ----------------------------------------------------------------- SLA
def _clock(kind, state, fraction, prio, team, tier, day):
    when = NOW - timedelta(days=day)
    return {
        "kind": kind,
        "state": state,
        "fraction": fraction,
        "priority": prio,
        "team": team,
        "customer_tier": tier,
        "due_at": when,
        "stopped_at": when,
    }


def test_sla_compliance_per_group_and_daily_buckets():
    rows = [
        _clock("resolution", "met", 0.5, 1, "Network", "gold", 0),
        _clock("resolution", "met", 0.9, 1, "Network", "gold", 1),  # near-breach
        _clock("resolution", "breached", 1.4, 1, "Access", "silver", 1),
        _clock("first_response", "breached", 2.0, 3, "Access", "gold", 2),
        _clock("first_response", "running", 0.85, 3, None, "gold", 0),  # open, near
        _clock("first_response", "running", 0.1, 3, "Network", "gold", 0),
    ]
    by_prio = {r["priority"]: r for r in sla.compliance(rows, "priority")}
    assert (by_prio["1"]["met"], by_prio["1"]["breached"]) == (2, 1)
    assert by_prio["1"]["compliance"] == pytest.approx(2 / 3) and by_prio["1"]["near"] == 1
    assert by_prio["3"]["compliance"] == 0.0 and by_prio["3"]["open"] == 2
    by_team = {r["team"]: r for r in sla.compliance(rows, "team")}
    assert by_team["—"]["open"] == 1 and by_team["Access"]["compliance"] == 0.0
    days = {d["day"]: d for d in sla.daily(rows, NOW, days=3)}
    assert days["2026-11-27"] == {"day": "2026-11-27", "met": 1, "breached": 0, "near": 1}
    assert days["2026-11-26"] == {"day": "2026-11-26", "met": 1, "breached": 1, "near": 1}
    assert days["2026-11-25"]["breached"] == 1
    report = sla.build_report(rows, NOW, days=3)
    assert report["sections"]["all"]["total"]["decided"] == 4
    assert report["sections"]["first_response"]["total"]["breached"] == 1


# ----------------------------------------------------------------- policy + plots
def test_policy_fold_newest_wins_and_reset_removes():
    changes = [
        ("team", None, {"mode": "off"}),
        ("team", "Network", {"apply": 0.99}),
        ("team", None, {"mode": "suggest_only"}),
        ("type", "incident", {"apply": 1.01}),
        ("type", "incident", None),
    ]
    assert policies.fold(changes) == {
        "team": {"mode": "suggest_only", "classes": {"Network": {"apply": 0.99, "suggest": None}}}
    }
    with pytest.raises(ValueError):
        policies.check_thresholds({"apply": "2"})
    with pytest.raises(ValueError):
        policies.check_mode("sometimes")


def test_svg_charts_escape_text_and_parse():
    hostile = "<img src=x onerror=alert(1)>"
    svgs = [
        plots.grouped_bars([hostile, "b"], {hostile: [0.5, None]}, hostile, "share"),
        plots.reliability([{"count": 3, "mean_confidence": 0.5, "accuracy": 0.4}], hostile),
        plots.precision_coverage(
            [{"coverage": 1, "precision": 0.8}], "t", [{"coverage": 1, "precision": 0.8, "label": hostile}]
        ),
        plots.grouped_bars([], {}, "empty", "clocks", unit=False),
    ]
    for svg in svgs:
        minidom.parseString(svg)  # well-formed: nothing unescaped broke out
        assert hostile not in svg and "<title>" in svg


def test_policy_store_records_who_when_old_new(tmp_path):
    from triage.store import Store

    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    store.upgrade()
    cache = policies.PolicyCache()
    with store.session() as s:
        assert cache.current(s) == {} and policies.version(s) == 0
        policies.set_class(
            s, "team", "Network", {"apply": "0.97", "suggest": ""}, by="ann", note="too many wrong routes"
        )
        policies.set_mode(s, "type", "off", by="bob")
    with store.session() as s:
        assert cache.current(s) == {
            "team": {"mode": "auto", "classes": {"Network": {"apply": 0.97, "suggest": None}}},
            "type": {"mode": "off", "classes": {}},
        }
        policies.set_mode(s, "type", "auto", by="bob")
        policies.set_class(s, "team", "Network", None, by="ann")
    with store.session() as s:
        assert cache.current(s) == {}
        history = policies.history(s)
    assert [(c["by"], c["head"], c["old"], c["new"]) for c in history] == [
        ("ann", "team", {"apply": 0.97, "suggest": None}, None),
        ("bob", "type", {"mode": "off"}, {"mode": "auto"}),
        ("bob", "type", {"mode": "auto"}, {"mode": "off"}),
        ("ann", "team", None, {"apply": 0.97, "suggest": None}),
    ]
    assert history[-1]["note"] == "too many wrong routes" and history[0]["at"]
    store.dispose()


def test_report_of_a_bundle_without_training_report_still_builds():
    manifest = {"bundle_id": "b1", "heads": {"team": {"thresholds": {"Network": {"apply": 0.9}}}}}
    live = {
        "team": {
            "predictions": [{"label": "Network", "decision": "apply", "n": 3}],
            "feedback": [],
            "low": [],
            "label_counts": {"Network": 3},
            "texts": [],
        }
    }
    report = confidence.build_report(manifest, {}, live, {}, generated_at="now", window_days=7)
    team = report["heads"]["team"]
    assert team["holdout"] is None and not team["alert"]
    assert team["live"]["decisions"]["apply"]["n"] == 3
    assert team["drift"]["labels"]["value"] is None


def test_gaps_reuse_stored_vectors_and_encode_only_the_rest():
    class Encoder:
        dim = 3
        calls: list = []

        def encode(self, texts):
            self.calls.append(list(texts))
            return np.ones((len(texts), 3), dtype=np.float32)

    class KB:
        class config:  # noqa: N801 - mimics KnowledgeBase.config
            threshold = 0.5

        def ranked(self, text, vec, k):
            return [(0, 0.1)]

    tickets = [{"id": i, "subject": f"s{i}", "text": f"printer jam {i}"} for i in range(4)]
    enc = Encoder()
    known = {
        0: np.array([1, 0, 0], np.float32),
        1: np.array([1, 0, 0], np.float32),
        2: np.zeros(5, np.float32),
    }  # a vector of another size is not reused
    gaps = knowledge.gaps_with_kb(tickets, KB(), enc, known=known, k=1)
    assert enc.calls == [["printer jam 2", "printer jam 3"]]
    assert gaps and gaps[0]["size"] == 4
