"""The champion pointer and the newest-bundle rule (triage/champion.py), the one contract
training writes and the service reads."""

from __future__ import annotations

import json

import pytest

from triage.champion import champion_bundle, newest_bundle, pointer_file, read_pointer, write_pointer
from triage.errors import BundleError


def _bundle(models, name):
    (models / name).mkdir(parents=True)
    (models / name / "manifest.json").write_text("{}")
    return models / name


def test_newest_bundle_sorts_by_id_and_ignores_folders_without_manifest(tmp_path):
    assert newest_bundle(tmp_path / "missing") is None
    assert newest_bundle(tmp_path) is None
    _bundle(tmp_path, "20260101T000000Z-aaa")
    newest = _bundle(tmp_path, "20260301T000000Z-bbb")
    (tmp_path / "20261231T000000Z-half-written").mkdir()  # no manifest: not a bundle
    assert newest_bundle(tmp_path) == newest
    assert champion_bundle(tmp_path) == newest  # no pointer: the newest


def test_pointer_round_trip_stores_ids_inside_the_models_dir(tmp_path):
    old = _bundle(tmp_path, "20260101T000000Z-aaa")
    _bundle(tmp_path, "20260301T000000Z-bbb")
    target = write_pointer(
        {
            "bundle_id": old.name,
            "path": str(old),
            "promoted_by": "me",
            "previous": {"bundle_id": "x", "path": str(old)},
        },
        pointer_file(tmp_path),
    )
    raw = json.loads(target.read_text())
    assert raw["path"] == old.name and raw["previous"]["path"] == old.name
    info = read_pointer(target)
    assert info["resolved_path"] == str(old) and info["promoted_by"] == "me"
    assert champion_bundle(tmp_path) == old  # the pointer wins over the newest bundle
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".CHAMPION")]  # no temp left


def test_pointer_outside_the_models_dir_is_absolute(tmp_path):
    elsewhere = _bundle(tmp_path / "other", "b1")
    models = tmp_path / "models"
    write_pointer({"bundle_id": "b1", "path": str(elsewhere)}, pointer_file(models))
    assert read_pointer(pointer_file(models))["resolved_path"] == str(elsewhere.resolve())


def test_pointer_without_path_names_the_bundle_id(tmp_path):
    write_pointer({"bundle_id": "b1", "path": None}, pointer_file(tmp_path))
    assert champion_bundle(tmp_path) == tmp_path / "b1"


@pytest.mark.parametrize("text", ["20260101T000000Z-aaa\n", "[]", '{"path": "x"}', "{"])
def test_a_pointer_in_another_format_is_refused_with_the_file_named(tmp_path, text):
    pointer_file(tmp_path).write_text(text)
    with pytest.raises(BundleError, match="CHAMPION: expected"):
        read_pointer(pointer_file(tmp_path))


def test_write_refuses_a_pointer_without_bundle_id(tmp_path):
    with pytest.raises(BundleError, match="bundle_id"):
        write_pointer({"path": "x"}, pointer_file(tmp_path))
    assert read_pointer(pointer_file(tmp_path)) is None
