"""Which bundle is the champion: the ``<models dir>/CHAMPION`` pointer and the newest-bundle rule.

Training writes the pointer (``triage promote``, ``rollback``, ``retrain``) and the
service reads it, without MLflow on either side of this file, so the service starts
and reloads with no tracking store reachable. This module is the one implementation
of that contract; nothing else opens ``CHAMPION`` or globs the models dir.

The API (all paths are ``pathlib.Path``; ``models`` is the models dir):

- ``pointer_file(models)`` → ``models / "CHAMPION"``.
- ``read_pointer(pointer)`` → the pointer as a dict, or None when the file does not
  exist; adds ``resolved_path`` (the bundle folder). A file that is not the format
  below raises :class:`~triage.errors.BundleError` naming the file.
- ``write_pointer(info, pointer)`` → writes atomically (temporary file in the same
  folder, fsync, ``os.replace``): a reader sees the old pointer or the new one, never
  half of one. A bundle path inside the models dir is stored as the bare bundle id.
- ``newest_bundle(models)`` → the newest bundle folder (one holding ``manifest.json``),
  or None. Bundle ids start with the UTC time of training, so names sort by age.
- ``champion_bundle(models)`` → the pointer's bundle, else the newest bundle, else None.

The format (one JSON object, written only by ``write_pointer``)::

    {"bundle_id": "20260101T000000Z-abc1234",   # required
     "path": "20260101T000000Z-abc1234",        # bundle id under the models dir, or an
                                                # absolute folder; absent/null: the bundle_id
     "mlflow": {...} | null, "promoted_at": "...", "promoted_by": "...",
     "forced": false, "reason": null,
     "previous": {"bundle_id": ..., "path": ..., "version": ...} | null}

Only ``bundle_id`` and ``path`` are read here; the rest is the promotion record
(see ``training.tracking``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import BundleError

POINTER_NAME = "CHAMPION"


def pointer_file(models: Path | str) -> Path:
    """Where the pointer of a models dir lives."""
    return Path(models) / POINTER_NAME


def read_pointer(pointer: Path | str) -> dict | None:
    """The pointer as a dict plus ``resolved_path``; None if the file does not exist."""
    pointer = Path(pointer)
    try:
        text = pointer.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise BundleError(
            f"{pointer}: expected the JSON champion pointer, got unreadable text ({exc})"
        ) from exc
    if not isinstance(info, dict) or not info.get("bundle_id"):
        raise BundleError(
            f"{pointer}: expected a JSON object with 'bundle_id' (and 'path'), got {text[:80]!r}"
        )
    info["resolved_path"] = str(_resolve(info.get("path") or info["bundle_id"], pointer.parent))
    return info


def write_pointer(info: dict, pointer: Path | str) -> Path:
    """Write the pointer atomically; bundle paths inside the models dir become bare ids."""
    pointer = Path(pointer)
    if not info.get("bundle_id"):
        raise BundleError(f"{pointer}: a champion pointer needs a bundle_id, got {info!r}")
    pointer.parent.mkdir(parents=True, exist_ok=True)
    info = {k: v for k, v in info.items() if k != "resolved_path"}
    info["path"] = _relative_to_models(info.get("path"), pointer.parent)
    if info.get("previous"):
        info["previous"] = dict(
            info["previous"], path=_relative_to_models(info["previous"].get("path"), pointer.parent)
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{POINTER_NAME}.", dir=pointer.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, pointer)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return pointer


def newest_bundle(models: Path | str) -> Path | None:
    """The newest bundle folder in ``models`` (ids start with the UTC time), or None."""
    models = Path(models)
    if not models.is_dir():
        return None
    found = sorted(p.parent for p in models.glob("*/manifest.json"))
    return found[-1] if found else None


def champion_bundle(models: Path | str) -> Path | None:
    """The bundle to serve: the pointer's, else the newest one, else None."""
    info = read_pointer(pointer_file(models))
    if info is not None:
        return Path(info["resolved_path"])
    return newest_bundle(models)


def _resolve(path: str, models: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else models / p


def _relative_to_models(path: str | None, models: Path) -> str | None:
    if not path:
        return path
    p = Path(path)
    try:
        if p.resolve().parent == models.resolve():
            return p.name
    except OSError:
        pass
    # elsewhere on disk: absolute, since readers resolve relative paths against the models dir
    return str(p.resolve()) if p.exists() else str(p)
