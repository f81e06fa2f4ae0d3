"""The champion pointer: ``<models dir>/CHAMPION``, read by the service without MLflow.

Why a file as well as the MLflow alias: the service must start (and reload) with no
tracking store reachable, and must never import MLflow. ``triage promote`` and
``triage rollback`` move the alias and then rewrite this file; the file is replaced
atomically (temporary file in the same folder, fsync, ``os.replace``), so a reader sees
the old pointer or the new one, never half of one. ``path`` is the bundle id (relative
to the models dir) when the bundle lives there, else an absolute path.
See :mod:`training.tracking` for the fields.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def models_dir(root: Path) -> Path:
    """``TRIAGE_MODELS_DIR`` (as the service reads it), else ``<project>/models``."""
    return Path(os.environ.get("TRIAGE_MODELS_DIR") or root / "models")


def _relative_to_models(path: str | None, models: Path) -> str | None:
    if not path:
        return path
    p = Path(path)
    try:
        if p.resolve().parent == models.resolve():
            return p.name
    except OSError:
        pass
    return str(p)


def write_champion(info: dict, target: Path) -> Path:
    """Write the pointer atomically; bundle paths inside the models dir become bare ids."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    info = dict(info)
    info["path"] = _relative_to_models(info.get("path"), target.parent)
    if info.get("previous"):
        info["previous"] = dict(info["previous"],
                                path=_relative_to_models(info["previous"].get("path"), target.parent))
    fd, tmp = tempfile.mkstemp(prefix=".CHAMPION.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_champion(target: Path) -> dict | None:
    """The pointer as a dict, with ``path`` resolved against the models dir; None if absent."""
    target = Path(target)
    if not target.exists():
        return None
    info = json.loads(target.read_text(encoding="utf-8"))
    if info.get("path") and not Path(info["path"]).is_absolute():
        info["resolved_path"] = str(target.parent / info["path"])
    else:
        info["resolved_path"] = info.get("path")
    return info
