"""``triage label-quality`` and ``triage retrain --watch`` through the CLI entry point."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

from test_label_quality import make_corpus
from triage_cli import main


def test_label_quality_command_writes_the_review_list(tmp_path, capsys):
    flipped, mapping = make_corpus(tmp_path / "export.csv", n=300)
    out = tmp_path / "flagged.csv"
    assert (
        main(
            [
                "label-quality",
                "--data",
                str(tmp_path / "export.csv"),
                "--mapping",
                str(mapping),
                "--out",
                str(out),
                "--folds",
                "3",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "team" in printed and "review list" in printed
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and len({int(r["row"]) for r in rows} & flipped) >= 0.6 * len(flipped)


def test_watch_is_bounded_and_does_not_retrain_when_not_due(tmp_path, capsys, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "retrain-log.jsonl").write_text(
        json.dumps({"at": datetime.now(timezone.utc).isoformat()}) + "\n"
    )
    monkeypatch.setenv("TRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 's.db'}")
    code = main(
        [
            "retrain",
            "--watch",
            "--models",
            str(models),
            "--no-mlflow",
            "--poll-seconds",
            "0.1",
            "--max-seconds",
            "0.5",
            "--min-new-labels",
            "5",
        ]
    )
    assert code == 0
    assert "0 retrains" in capsys.readouterr().out


def test_force_needs_a_reason(tmp_path, capsys):
    assert main(["retrain", "--models", str(tmp_path), "--force"]) == 2
    assert "--reason" in capsys.readouterr().err
