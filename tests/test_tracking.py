"""MLflow logging and the champion gate, against a temporary SQLite store in tmp_path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("mlflow")
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # inside MLflow

from training import tracking  # noqa: E402
from triage.champion import read_pointer  # noqa: E402
from training.evaluation import head_metrics, reference_metrics  # noqa: E402


def _report(bundle_id: str, accuracy: float, *, data_sha: str = "d1") -> dict:
    """A report whose team head gets ``accuracy`` of 200 holdout rows right."""
    classes = ["network", "access", "<hw>"]
    n = 200
    y = [classes[i % 3] for i in range(n)]
    right = int(round(accuracy * n))
    proba = np.full((n, 3), 0.05)
    for i in range(n):
        j = i % 3 if i < right else (i + 1) % 3
        proba[i, j] = 0.9
    thr = {c: {"apply": 0.85, "suggest": 0.5} for c in classes}
    return {
        "bundle_id": bundle_id,
        "created_at": "2026-11-27T00:00:00Z",
        "data": {
            "path": "tickets.csv",
            "sha256": data_sha,
            "rows": 1000,
            "split": {"holdout": 0.2, "seed": 13},
        },
        "heads": {
            "team": {
                "metrics": head_metrics(y, proba, classes, thr),
                "reference": reference_metrics(y, y[:-5] + ["network"] * 5),
                "candidates": {"tfidf": accuracy, "embedding": accuracy - 0.1},
                "chosen": "tfidf",
                "thresholds": thr,
            }
        },
        "dropped_rows": {"no text": 1},
    }


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """Creating MLflow's schema takes seconds: do it once, copy the file per test."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mc, _ = tracking.client(f"sqlite:///{path}")
    mc.search_experiments()
    return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """Report files to log, written once (test_evaluation covers writing them)."""
    folder = tmp_path_factory.mktemp("report")
    for name in ("report.json", "report.html", "team-reliability.svg"):
        (folder / name).write_text("{}")
    return folder


@pytest.fixture
def store(tmp_path, monkeypatch, empty_db, report_dir):
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _bundle(tmp_path, bundle_id: str, accuracy: float, **kw):
    folder = tmp_path / "models" / bundle_id
    folder.mkdir(parents=True)
    report = _report(bundle_id, accuracy, **kw)
    (folder / "manifest.json").write_text(json.dumps({"bundle_id": bundle_id}))
    (folder / "team.joblib").write_bytes(b"not really a model")
    return report, folder


def _log(tmp_path, store, bundle_id, accuracy, *, report_dir=None, **kw):
    report, folder = _bundle(tmp_path, bundle_id, accuracy, **kw)
    return tracking.log_training_run(
        report,
        folder,
        tracking_uri=store,
        report_dir=report_dir,
        config={"encoder": "hashing", "heads": ["team"]},
    )


@pytest.fixture
def log_run(tmp_path, store, report_dir):
    return lambda bundle_id, accuracy, **kw: _log(
        tmp_path, store, bundle_id, accuracy, report_dir=report_dir, **kw
    )


def test_run_has_params_metrics_artifacts_and_a_model_version(tmp_path, store):
    run_id = _log(tmp_path, store, "20261127T000000Z-aaaaaaa", 0.8)  # writes the real report
    mc, _ = tracking.client(store)
    run = mc.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["team.macro_f1"] == pytest.approx(0.8, abs=0.02)
    assert "team.ece_15" in run.data.metrics and "team.applied.coverage" in run.data.metrics
    assert "team.class._hw_.f1" in run.data.metrics  # label sanitised for MLflow
    assert run.data.params["config.encoder"] == "hashing"
    assert run.data.params["data.sha256"] == "d1"
    top = {a.path for a in mc.list_artifacts(run_id)}
    assert {"bundle", "report", "config.json"} <= top
    report_files = {a.path for a in mc.list_artifacts(run_id, "report")}
    assert {"report/report.json", "report/report.html", "report/team-reliability.svg"} <= report_files
    assert run.info.artifact_uri.startswith((tmp_path / "mlruns").as_uri())  # explicit location
    (mv,) = mc.search_model_versions("name='triage'")
    assert mv.run_id == run_id and mv.tags["bundle_id"] == "20261127T000000Z-aaaaaaa"
    assert mv.source.endswith("/bundle")


def test_promote_moves_alias_and_writes_the_pointer(tmp_path, store, log_run):
    log_run("b1", 0.8)
    first = tracking.promote("b1", tracking_uri=store)
    assert first.promoted and first.previous is None
    log_run("b2", 0.9)
    second = tracking.promote("2", tracking_uri=store)
    assert second.promoted and second.previous == "1" and second.comparison["team"]["delta"] > 0
    mc, _ = tracking.client(store)
    assert str(tracking.current_champion(mc).version) == "2"
    pointer = read_pointer(tmp_path / "models" / "CHAMPION")
    assert pointer["bundle_id"] == "b2" and pointer["path"] == "b2"
    assert pointer["resolved_path"] == str(tmp_path / "models" / "b2")
    assert pointer["previous"]["bundle_id"] == "b1" and pointer["mlflow"]["version"] == "2"


def test_a_worse_challenger_is_refused_and_force_is_recorded(tmp_path, store, log_run):
    log_run("good", 0.9)
    tracking.promote("good", tracking_uri=store)
    log_run("worse", 0.7)
    with pytest.raises(tracking.PromotionRefused, match="team: macro-F1") as err:
        tracking.promote("worse", tracking_uri=store)
    assert err.value.result.comparison["team"]["delta"] < 0
    mc, _ = tracking.client(store)
    assert tracking.current_champion(mc).tags["bundle_id"] == "good"
    assert read_pointer(tmp_path / "models" / "CHAMPION")["bundle_id"] == "good"

    within = tracking.promote("worse", tracking_uri=store, margin=0.5)  # tolerance
    assert within.promoted and not within.forced
    tracking.rollback(tracking_uri=store)

    forced = tracking.promote("worse", force=True, reason="hotfix labels", tracking_uri=store, user="tester")
    assert forced.promoted and forced.forced
    mv = tracking.current_champion(mc)
    assert mv.tags["bundle_id"] == "worse" and mv.tags["forced"] == "true"
    assert mv.tags["forced_by"] == "tester" and mv.tags["forced_reason"] == "hotfix labels"
    assert "team" in mv.tags["forced_over"]
    pointer = read_pointer(tmp_path / "models" / "CHAMPION")
    assert pointer["forced"] is True and pointer["reason"] == "hotfix labels"


def test_other_holdout_needs_evaluation_or_force(tmp_path, store, log_run):
    log_run("old", 0.8, data_sha="d1")
    tracking.promote("old", tracking_uri=store)
    log_run("new", 0.85, data_sha="d2")
    with pytest.raises(tracking.PromotionRefused, match="another holdout"):
        tracking.promote("new", tracking_uri=store)
    seen = []

    def evaluate(challenger, champion):  # both scored on tickets neither has seen
        seen.append((challenger, champion))
        return {"team": 0.84}, {"team": 0.83}

    assert tracking.promote("new", tracking_uri=store, evaluate=evaluate).promoted
    assert seen == [(str(tmp_path / "models" / "new"), str(tmp_path / "models" / "old"))]


def test_rollback_restores_the_previous_champion_down_the_chain(tmp_path, store, log_run):
    for i, acc in enumerate([0.7, 0.8, 0.9], 1):
        log_run(f"b{i}", acc)
        tracking.promote(f"b{i}", tracking_uri=store)
    back = tracking.rollback(tracking_uri=store, reason="bad in prod")
    assert back.version == "2" and back.previous == "1"
    assert read_pointer(tmp_path / "models" / "CHAMPION")["bundle_id"] == "b2"
    assert tracking.rollback(tracking_uri=store).version == "1"
    with pytest.raises(tracking.TriageError, match="no previous champion"):
        tracking.rollback(tracking_uri=store)
    mc, _ = tracking.client(store)
    assert mc.get_model_version("triage", "3").tags["rolled_back_reason"] == "bad in prod"


def test_unknown_version_is_a_clear_error(tmp_path, store, log_run):
    log_run("b1", 0.8)
    with pytest.raises(tracking.NotFound, match="no version"):
        tracking.promote("nope", tracking_uri=store)
    with pytest.raises(tracking.NotFound, match="no version"):
        tracking.promote("7", tracking_uri=store)


def test_cli_promote_refuses_then_forces_and_rolls_back(tmp_path, store, log_run, capsys, monkeypatch):
    from triage_cli import main

    monkeypatch.setenv("TRIAGE_MODELS_DIR", str(tmp_path / "models"))  # the pointer the CLI moves
    log_run("good", 0.9)
    log_run("worse", 0.7)
    common = ["--tracking-uri", store]
    assert main(["promote", "good", *common]) == 0
    assert main(["promote", "worse", *common]) == 1
    assert "refused" in capsys.readouterr().err
    assert main(["promote", "worse", "--force", *common]) == 2  # --force needs --reason
    assert main(["promote", "worse", "--force", "--reason", "test", "--json", *common]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :])["forced"] is True
    assert main(["rollback", *common]) == 0
    assert read_pointer(tmp_path / "models" / "CHAMPION")["bundle_id"] == "good"


def _tiny_export(folder):
    words = {
        "network": "vpn wifi router firewall",
        "email": "outlook mailbox inbox smtp",
        "printing": "printer toner scanner jam",
    }
    rows = ["subject,body,team"]
    for i in range(60):
        for team, vocab in words.items():
            w = vocab.split()
            rows.append(f"{w[i % 4]} issue {i},the {w[(i + 1) % 4]} and {w[(i + 2) % 4]} fail,{team}")
    (folder / "export.csv").write_text("\n".join(rows) + "\n")
    (folder / "mapping.yaml").write_text(
        "text: {subject: subject, body: body}\nlabels: {team: {column: team}}\n"
    )
    return folder / "export.csv", folder / "mapping.yaml"


def test_a_trained_bundle_is_logged_registered_and_served_as_champion(tmp_path, store):
    from training.pipeline import train
    from triage.predict import Triager

    data, mapping = _tiny_export(tmp_path)
    result = train(data, mapping, tmp_path / "models", candidates=("tfidf",), cv=3, progress=False)
    run_id = tracking.log_training_run(result, tracking_uri=store)
    mc, _ = tracking.client(store)
    run = mc.get_run(run_id)
    assert run.data.metrics["team.macro_f1"] == pytest.approx(
        result.report["heads"]["team"]["metrics"]["macro_f1"]
    )
    assert run.data.params["config.candidates"] == '["tfidf"]'
    assert {"report/report.html", "report/team-reliability.png"} <= {
        a.path for a in mc.list_artifacts(run_id, "report")
    }
    mv = tracking.find_version(mc, "triage", result.bundle_path)
    assert mv.tags["holdout_key"] == result.report["data"]["holdout_key"]
    tracking.promote(result.bundle_id, tracking_uri=store)
    pointer = read_pointer(tmp_path / "models" / "CHAMPION")
    assert pointer["path"] == result.bundle_id
    tri = Triager.from_bundle(pointer["resolved_path"])
    assert tri.bundle_id == result.bundle_id and tri.heads == ["team"]
    copy = tracking.registered_bundle(tracking_uri=store)  # the logged artifacts, not models/
    assert copy.is_relative_to(tmp_path / "mlruns")
    assert Triager.from_bundle(copy).bundle_id == result.bundle_id  # the registered artifacts load


def test_shared_holdout_rows_are_unseen_by_both_splits():
    from types import SimpleNamespace

    from training.holdout import shared_holdout_rows
    from training.pipeline import assign_splits

    texts = [f"ticket number {i}" for i in range(2000)]
    a = SimpleNamespace(manifest={"config": {"fractions": [0.7, 0.1, 0.2], "seed": 0}})
    b = SimpleNamespace(manifest={"config": {"fractions": [0.7, 0.1, 0.2], "seed": 1}})
    same = shared_holdout_rows(texts, [a, a])
    assert list(same) == list(np.flatnonzero(assign_splits(texts, (0.7, 0.1, 0.2), 0) == "holdout"))
    both = shared_holdout_rows(texts, [a, b])
    assert set(both) <= set(same) and 0.02 < len(both) / len(texts) < 0.07  # ≈ 0.2 × 0.2


def test_the_command_resolves_the_store_from_settings_and_the_library_reads_none(monkeypatch, tmp_path):
    from triage_cli import workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TRIAGE_HOME", str(tmp_path))
    assert workspace.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert workspace.models_dir() == tmp_path / "models"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/ml/other.db")
    assert workspace.tracking_uri() == "sqlite:////srv/ml/other.db"
    assert workspace.tracking_uri("http://given") == "http://given"
    monkeypatch.chdir(tmp_path / "..")
    assert tracking.default_tracking_uri() == f"sqlite:///{tmp_path.parent}/mlflow.db"  # cwd, no env
    assert tracking.artifact_location_for("sqlite:////srv/ml/other.db") == "file:///srv/ml/mlruns"
    assert tracking.artifact_location_for("http://mlflow:5000") is None  # the server decides
