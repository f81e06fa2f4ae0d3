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
    config = resolve(
        {"TRIAGE_MAX_BATCH": 3}, environ={"TRIAGE_MAX_BATCH": "7", "TRIAGE_KB_K": "9", "TRIAGE_AUTH": "off"}
    )
    assert config["TRIAGE_MAX_BATCH"] == 3 and config["TRIAGE_KB_K"] == 9
    assert config["TRIAGE_AUTH"] is False and config["TRIAGE_WORKERS"] == 2


def test_an_unknown_triage_variable_is_refused_with_the_known_names():
    import pytest

    from triage.errors import ConfigError

    with pytest.raises(ConfigError, match=r"TRIAGE_MAX_BATCHES.*expected one of: .*TRIAGE_MAX_BATCH,"):
        resolve(environ={"TRIAGE_MAX_BATCHES": "7"})
    with pytest.raises(ConfigError, match="test config: unknown setting"):
        resolve({"TRIAGE_NOPE": 1}, environ={})
    assert resolve(environ={"OTHER_THING": "x"})["TRIAGE_MAX_BATCH"] == 64  # not ours: ignored


def test_runtime_files_follow_the_var_dir_unless_set_one_by_one():
    config = resolve(environ={"TRIAGE_VAR_DIR": "/srv/triage", "TRIAGE_MAIL_DIR": "/spool/mail"})
    assert config["TRIAGE_SECRET_KEY_FILE"] == "/srv/triage/secret_key"
    assert config["TRIAGE_ATTACHMENTS_DIR"] == "/srv/triage/attachments"
    assert config["TRIAGE_MAIL_DIR"] == "/spool/mail"
    assert resolve(environ={})["TRIAGE_SECRET_KEY_FILE"] == "var/secret_key"
