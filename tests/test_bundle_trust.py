"""Trusted bundles: loaded only from the models folder (or a trusted one), signed when a key is set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from triage.bundle import MANIFEST, file_sha256, load_bundle, read_manifest, sign_bundle, write_bundle
from triage.bundle_trust import check_location, parse_trusted
from triage.errors import BundleError

KEY = "test-signing-key"


class Boom:
    """A pickle that runs code when loaded: what an attacker plants."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/triage-test-pwned",))


def small_bundle(models: Path, key: str | None = None) -> Path:
    model = DummyClassifier(strategy="most_frequent").fit([[0], [1]], ["a", "b"])
    return write_bundle(
        models,
        {"type": model},
        {"encoder": {"kind": "hashing", "dim": 16}, "heads": {"type": {"labels": ["a", "b"]}}},
        signing_key=key,
    )


def plant_pickle(bundle: Path, *, fix_checksum: bool) -> None:
    """Replace the head with a code-running pickle; an attacker who can write the folder can
    also rewrite the checksum in the manifest."""
    joblib.dump(Boom(), bundle / "type.joblib")
    if fix_checksum:
        manifest = json.loads((bundle / MANIFEST).read_text())
        manifest["files"]["type.joblib"] = file_sha256(bundle / "type.joblib")
        (bundle / MANIFEST).write_text(json.dumps(manifest))


def test_a_signed_bundle_loads_with_its_key(tmp_path):
    bundle = small_bundle(tmp_path / "models", KEY)
    assert read_manifest(bundle)["signature"]["algorithm"] == "hmac-sha256"
    assert load_bundle(bundle, signing_key=KEY).heads["type"].predict([[0]])[0] in ("a", "b")


def test_triage_train_passes_the_setting_to_the_bundle_writer(tmp_path, monkeypatch):
    """``triage train`` hands TRIAGE_BUNDLE_SIGNING_KEY to training.pipeline.train, which
    hands it to write_bundle (retrain goes through the same train)."""
    import training.pipeline
    from triage_cli import main

    seen = {}

    def fake_train(data, mapping, out, **kwargs):
        seen.update(kwargs)
        bundle = small_bundle(Path(out), kwargs.get("signing_key"))
        from types import SimpleNamespace

        return SimpleNamespace(bundle_path=bundle, report={}, report_dir=None)

    monkeypatch.setattr(training.pipeline, "train", fake_train)
    monkeypatch.setattr("training.evaluation.render_text_summary", lambda report: "")
    monkeypatch.setenv("TRIAGE_BUNDLE_SIGNING_KEY", KEY)
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "x.csv"),
                "--mapping",
                str(tmp_path / "m.yaml"),
                "--out",
                str(tmp_path / "models"),
                "--no-tracking",
            ]
        )
        == 0
    )
    assert seen["signing_key"] == KEY
    bundle = next((tmp_path / "models").glob("*/manifest.json")).parent
    load_bundle(bundle, signing_key=KEY)
    import inspect

    from training.retrain import retrain

    assert "signing_key" in inspect.signature(retrain).parameters


def test_a_tampered_bundle_is_refused_before_unpickling(tmp_path):
    bundle = small_bundle(tmp_path / "models", KEY)
    plant_pickle(bundle, fix_checksum=True)
    marker = Path("/tmp/triage-test-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(BundleError, match="signature does not match"):
        load_bundle(bundle, signing_key=KEY)
    assert not marker.exists()


def test_an_unsigned_bundle_is_refused_when_signing_is_on(tmp_path):
    bundle = small_bundle(tmp_path / "models")
    with pytest.raises(BundleError, match="not signed"):
        load_bundle(bundle, signing_key=KEY)
    with pytest.raises(BundleError, match="signature does not match"):
        load_bundle(small_bundle(tmp_path / "other", "another-key"), signing_key=KEY)
    sign_bundle(bundle, KEY)  # an operator vouches for it
    load_bundle(bundle, signing_key=KEY)


def test_signing_refuses_a_bundle_whose_files_changed(tmp_path):
    bundle = small_bundle(tmp_path / "models")
    plant_pickle(bundle, fix_checksum=False)
    with pytest.raises(BundleError, match="checksum"):
        sign_bundle(bundle, KEY)


def test_sign_bundle_command(tmp_path, monkeypatch, capsys):
    from triage_cli import main

    bundle = small_bundle(tmp_path / "models")
    monkeypatch.delenv("TRIAGE_BUNDLE_SIGNING_KEY", raising=False)
    assert main(["sign-bundle", str(bundle)]) == 2  # no key: a clear error
    monkeypatch.setenv("TRIAGE_BUNDLE_SIGNING_KEY", KEY)
    assert main(["sign-bundle", str(bundle)]) == 0
    load_bundle(bundle, signing_key=KEY)


# ----------------------------------------------------------------- where bundles may come from
def test_only_the_models_folder_unless_trusted(tmp_path):
    models = tmp_path / "models"
    inside = small_bundle(models)
    outside = small_bundle(tmp_path / "elsewhere")
    assert check_location(inside, models) == inside.resolve()
    with pytest.raises(BundleError, match="outside the models folder"):
        check_location(outside, models)
    assert check_location(outside, models, [tmp_path / "elsewhere"]) == outside.resolve()
    link = models / "innocent"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(BundleError, match="outside the models folder"):
        check_location(link, models)  # the symlink is followed, and it leaves the folder
    with pytest.raises(BundleError):
        check_location(models / ".." / "elsewhere" / outside.name, models)
    assert parse_trusted(f"/a{os.pathsep}/b,/c") == ["/a", "/b", "/c"]


def _service_config(models: Path, **extra) -> dict:
    return {
        "TESTING": True,
        "TRIAGE_MODELS_DIR": str(models),
        "TRIAGE_LOAD": "off",
        "TRIAGE_SIGHUP": False,
        **extra,
    }


def test_the_service_refuses_a_bundle_outside_the_models_folder(tmp_path):
    from service.app import create_app
    from service.state import resolve_bundle

    models = tmp_path / "models"
    small_bundle(models)
    outside = small_bundle(tmp_path / "elsewhere")
    app = create_app(_service_config(models, TRIAGE_BUNDLE=str(outside)))
    with pytest.raises(BundleError, match="outside the models folder"):
        resolve_bundle(app.config)
    app = create_app(
        _service_config(
            models, TRIAGE_BUNDLE=str(outside), TRIAGE_TRUSTED_BUNDLES=str(tmp_path / "elsewhere")
        )
    )
    assert resolve_bundle(app.config) == outside  # --trust PATH
    (models / "CHAMPION").write_text(json.dumps({"bundle_id": outside.name, "path": str(outside)}))
    app = create_app(_service_config(models))
    with pytest.raises(BundleError, match="outside the models folder"):
        resolve_bundle(app.config)  # a champion pointer cannot lead outside either
    (models / "CHAMPION").unlink()
    (models / "zzz-link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BundleError, match="outside the models folder"):
        resolve_bundle(app.config)  # the newest folder is a symlink out


def test_the_service_refuses_unsigned_bundles_when_a_key_is_set(tmp_path):
    from service.components import load_triager

    models = tmp_path / "models"
    unsigned = small_bundle(models)
    with pytest.raises(BundleError, match="not signed"):
        load_triager(unsigned, None, KEY)
