"""`triage quickstart` (what ./start.sh runs) trains the demo bundle on a fresh checkout."""

from __future__ import annotations

import json
from pathlib import Path

from triage_cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_trains_and_reports_the_demo_bundle(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIAGE_HOME", str(ROOT))  # the demo corpus; outputs go to tmp (conftest)
    models = tmp_path / "models"
    code = main(["quickstart", "--no-serve", "--no-history", "--encoder", "hashing", "--models", str(models)])
    assert code == 0
    out = capsys.readouterr().out
    bundles = [p for p in models.iterdir() if (p / "manifest.json").is_file()]
    assert len(bundles) == 1, out
    manifest = json.loads((bundles[0] / "manifest.json").read_text())
    assert {"type", "team"} <= set(manifest["heads"]), manifest.keys()
    assert "bundle:" in out  # the evaluation report was printed


def _fit_workers() -> list[str]:
    import psutil

    return [
        " ".join(c.cmdline()[-3:])
        for c in psutil.Process().children(recursive=True)
        if "popen_loky_posix" in " ".join(c.cmdline())
    ]


def test_the_demo_training_leaves_no_fit_worker_beside_the_service(tmp_path, monkeypatch, capsys):
    """The cross-fits run in joblib's loky worker processes, kept for reuse; quickstart's
    process then becomes the service's gunicorn master, so two idle workers (~250 MB each,
    seen on a fresh clone's ./start.sh) lived beside the service and outlived its stop."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIAGE_HOME", str(ROOT))
    models = tmp_path / "models"
    code = main(["quickstart", "--no-serve", "--no-history", "--encoder", "hashing", "--models", str(models)])
    assert code == 0, capsys.readouterr().err
    assert _fit_workers() == []
