"""The parts of a retrain, fast: the gate, final human labels, the retrain export, coverage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from training.gate import GateConfig, decide
from training.mapping import load_export, parse_mapping
from training.retrain import coverage_at
from training.retrain_data import build_export, freeze_holdout, holdout_mask, ticket_labels
from triage.store import Store
from triage.store.tables import Feedback, TicketEvent, TicketRow

T0 = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)


def _m(f1=0.8, ece=0.05, cov=0.5):
    return {"macro_f1": f1, "ece_15": ece, "coverage_at_target": cov}


def test_gate_passes_within_tolerances_and_names_each_regression():
    ok = decide({"team": {"champion": _m(), "challenger": _m(0.795, 0.06, 0.48)}})
    assert ok.passed and not ok.reasons
    bad = decide(
        {
            "team": {"champion": _m(), "challenger": _m(0.78, 0.09, 0.40)},
            "type": {"champion": _m(), "challenger": None},
            "new": {"champion": None, "challenger": _m()},
        },
        GateConfig(margin=0.01),
    )
    assert not bad.passed
    text = " | ".join(bad.reasons)
    assert "team: macro-F1 drops from 0.8000 to 0.7800" in text
    assert "team: ECE rises" in text and "team: coverage at target precision drops" in text
    assert "type: the champion has this head, the challenger does not" in text
    assert "new" not in bad.checks  # a new head cannot regress
    assert bad.checks["team"]["macro_f1"]["delta"] == pytest.approx(-0.02)


def test_coverage_at_target_precision():
    proba = np.array([[0.99, 0.01], [0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    y = ["a", "a", "b", "a"]  # the third is wrong
    assert coverage_at(proba, y, ["a", "b"], 0.95) == 0.5
    assert coverage_at(proba, y, ["a", "b"], 0.7) == 1.0
    assert coverage_at(proba, ["b"] * 4, ["a", "b"], 0.5) == 0.0


@pytest.fixture()
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    s.upgrade()
    yield s
    s.dispose()


def _ticket(session, subject, team, status="new", actor="model:b1"):
    t = TicketRow(subject=subject, body="details", team=team, status=status, created_at=T0)
    session.add(t)
    session.flush()
    session.add(TicketEvent(ticket_id=t.id, field="team", old=None, new=team, actor=actor, at=T0))
    return t


def test_only_human_labels_count_and_the_newest_wins(store):
    with store.session() as s:
        model_only = _ticket(s, "model set it", "Network")
        corrected = _ticket(s, "agent corrected", "Service Desk", actor="ann")
        closed = _ticket(s, "closed untouched", "Network", status="closed")
        for i, (head, value) in enumerate(
            [("type", "incident"), ("type", "question"), ("type", "Hardware"), ("category", "Hardware")]
        ):
            s.add(
                Feedback(
                    ticket_id=corrected.id,
                    head=head,
                    predicted="x",
                    corrected=value,
                    bundle_id="b1",
                    by="ann",
                    at=T0 + timedelta(minutes=i),
                )
            )
        ids = model_only.id, corrected.id, closed.id
    known = {"type": {"incident", "question", "service_request"}, "team": {"Network"}}
    with store.session() as s:
        labels = ticket_labels(s, ["type", "team"], known)
    by_id = {r["ticket"].id: r["labels"] for r in labels.rows}
    assert ids[0] not in by_id  # the model's own guess is no label
    # "Hardware" is a category filed under type by the store: not a type; "question" is newest
    assert by_id[ids[1]] == {"type": "question", "team": "Service Desk"}
    assert by_id[ids[2]] == {"team": "Network"}  # closed as it stood: confirmed
    with store.session() as s:
        strict = ticket_labels(s, ["team"], known, confirm_on_close=False)
    assert {r["ticket"].id for r in strict.rows} == {ids[1]}


def test_retrain_export_appends_store_rows_with_codes_renamed_back(store, tmp_path):
    base = tmp_path / "export.csv"
    base.write_text(
        "id,title,text,imp,grp\nH1,printer jam,tray two,1,Desk\nH2,vpn down,since today,3,Network\n",
        encoding="utf-8",
    )
    mapping = parse_mapping(
        {
            "text": {"subject": "title", "body": "text"},
            "metadata": {"id": "id"},
            "labels": {"impact": {"column": "imp", "rename": {1: "high", 3: "low"}}, "team": "grp"},
        }
    )
    with store.session() as s:
        t = _ticket(s, "wifi slow", "Network", actor="bob")
        s.add(
            Feedback(
                ticket_id=t.id,
                head="impact",
                predicted="low",
                corrected="high",
                bundle_id="b1",
                by="bob",
                at=T0,
            )
        )
    with store.session() as s:
        labels = ticket_labels(s, ["impact", "team"], {"impact": {"high", "low"}})
    info = build_export(base, mapping, labels, tmp_path / "retrain.csv")
    assert info["base_rows"] == 2 and info["store_rows"] == 1
    data = load_export(tmp_path / "retrain.csv", mapping)
    assert data.metadata["id"][-1].startswith("store:")
    assert data.labels["impact"] == ["high", "low", "high"]
    assert data.labels["team"][-1] == "Network"


def test_frozen_holdout_is_never_rewritten(tmp_path):
    base = tmp_path / "export.csv"
    base.write_text(
        "title,grp\n" + "".join(f"ticket number {i},T{i % 2}\n" for i in range(50)), encoding="utf-8"
    )
    mapping = parse_mapping({"text": {"body": "title"}, "labels": {"team": "grp"}})
    first = freeze_holdout(tmp_path / "HOLDOUT.json", base, mapping, bundle_id="v1")
    assert 0 < len(first["keys"]) < 50
    base.write_text("title,grp\nsomething else,T0\n", encoding="utf-8")
    again = freeze_holdout(tmp_path / "HOLDOUT.json", base, mapping, bundle_id="v2")
    assert again == first
    data = load_export(tmp_path / "export.csv", mapping)
    assert holdout_mask(data.texts, first) == [False]
