"""Bundles: round trip, tampering refused, other scikit-learn refused, never half-visible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from triage.bundle import MANIFEST, load_bundle, new_bundle_id, read_manifest, write_bundle
from triage.classifiers import Features, TextHead
from triage.errors import BundleError

TEXTS = [
    "printer jams on floor two",
    "vpn will not connect",
    "need a new laptop",
    "printer out of toner",
    "vpn drops every hour",
    "order a monitor please",
] * 5
LABELS = ["hardware", "network", "purchase"] * 10


@pytest.fixture(scope="module")
def head() -> TextHead:
    return TextHead("tfidf", cv=3).fit(Features(TEXTS), LABELS)


def _write(tmp_path: Path, head: TextHead, **kw) -> Path:
    manifest = {
        "heads": {"team": {"classes": list(head.classes_), "thresholds": {}}},
        "encoder": {"kind": "hashing", "dim": 64},
    }
    return write_bundle(tmp_path / "models", {"team": head}, manifest, **kw)


def test_round_trip_gives_the_same_probabilities(tmp_path, head):
    path = _write(tmp_path, head, bundle_id="20260101T000000Z-abc1234")
    assert path.name == "20260101T000000Z-abc1234"
    bundle = load_bundle(path)
    X = Features(["printer jams again"])
    np.testing.assert_allclose(bundle.heads["team"].predict_proba(X), head.predict_proba(X))
    m = bundle.manifest
    assert m["format_version"] == 1 and m["bundle_id"] == path.name
    assert m["heads"]["team"]["file"] == "team.joblib"
    assert set(m["files"]) == {"team.joblib"} and len(m["files"]["team.joblib"]) == 64
    assert m["libraries"]["scikit-learn"] and m["encoder"] == {"kind": "hashing", "dim": 64}


def test_same_id_twice_gets_a_new_folder(tmp_path, head):
    a = _write(tmp_path, head, bundle_id="x")
    b = _write(tmp_path, head, bundle_id="x")
    assert a != b and b.name == "x-2"


def test_bundle_id_is_utc_time_and_sha():
    from datetime import datetime, timezone

    bid = new_bundle_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "abc1234")
    assert bid == "20260102T030405Z-abc1234"


def test_tampered_file_is_refused_before_unpickling(tmp_path, head):
    path = _write(tmp_path, head)
    with open(path / "team.joblib", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="checksum of team.joblib does not match"):
        load_bundle(path)


def test_extra_joblib_is_refused(tmp_path, head):
    path = _write(tmp_path, head)
    (path / "evil.joblib").write_bytes(b"x")
    with pytest.raises(BundleError, match="unlisted file evil.joblib"):
        load_bundle(path)


def test_missing_file_is_refused(tmp_path, head):
    path = _write(tmp_path, head)
    (path / "team.joblib").unlink()
    with pytest.raises(BundleError, match="expected file team.joblib"):
        load_bundle(path)


def test_other_sklearn_version_is_refused_with_a_clear_message(tmp_path, head):
    path = _write(tmp_path, head)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["libraries"]["scikit-learn"] = "0.24.2"
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError,
        match=r"trained with scikit-learn 0\.24\.2.*install "
        r"scikit-learn==0\.24\.2",
    ):
        load_bundle(path)


def test_half_written_bundle_is_never_visible(tmp_path, head):
    models = tmp_path / "models"
    seen = []

    def look_then_fail(tmp: Path, bundle_id: str) -> None:
        seen.extend(p.name for p in models.iterdir() if not p.name.startswith("."))
        (tmp / "report.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _write(tmp_path, head, extras=look_then_fail)
    assert seen == []  # nothing visible while writing
    assert list(models.iterdir()) == []  # and nothing left behind after the failure


def test_extras_are_checksummed_too(tmp_path, head):
    path = _write(
        tmp_path,
        head,
        extras=lambda tmp, bid: (
            (tmp / "report").mkdir()
            or (tmp / "report" / "report.json").write_text(json.dumps({"bundle_id": bid}))
        ),
    )
    assert "report/report.json" in read_manifest(path)["files"]
    (path / "report" / "report.json").write_text("{}")
    with pytest.raises(BundleError, match="report/report.json"):
        load_bundle(path)


def _folder_with_manifest(root: Path, text: str) -> Path:
    (root / "b").mkdir()
    (root / "b" / MANIFEST).write_text(text)
    return root / "b"


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p / "nope",
        lambda p: (p / ".tmp-abc").mkdir() or p / ".tmp-abc",
        lambda p: _folder_with_manifest(p, "{bad"),
        lambda p: _folder_with_manifest(p, '{"format_version": 9}'),
    ],
)
def test_not_a_bundle_is_a_bundle_error(tmp_path, make):
    with pytest.raises(BundleError):
        load_bundle(make(tmp_path))
