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
