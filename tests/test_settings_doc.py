"""docs/SETTINGS.md is generated from service/settings.py and names every setting."""
from __future__ import annotations

from pathlib import Path

from service.settings import SETTINGS, resolve, settings_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "SETTINGS.md"


def test_settings_doc_is_current():
    text = DOC.read_text(encoding="utf-8")
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"docs/SETTINGS.md lacks {missing}: run python -m service.settings > docs/SETTINGS.md"
    assert text == settings_markdown(), "docs/SETTINGS.md is stale: regenerate it"


def test_every_setting_is_documented_and_prefixed():
    for s in SETTINGS:
        assert s.name.startswith("TRIAGE_") and len(s.doc) > 20, s.name


def test_precedence_defaults_env_test_config():
    config = resolve({"TRIAGE_MAX_BATCH": 3}, environ={"TRIAGE_MAX_BATCH": "7", "TRIAGE_KB_K": "9",
                                                       "TRIAGE_AUTH": "off"})
    assert config["TRIAGE_MAX_BATCH"] == 3 and config["TRIAGE_KB_K"] == 9
    assert config["TRIAGE_AUTH"] is False and config["TRIAGE_WORKERS"] == 2
