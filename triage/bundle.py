"""The model bundle: one folder that is the whole contract between training and serving.

``models/<UTC time>-<git sha>/`` holds ``manifest.json`` and one ``.joblib`` per
head (plus whatever report files training adds). It is written into a hidden
temporary folder and renamed into place, so a reader never sees half a bundle.

A joblib file is code: unpickling runs whatever it says. So every file's
sha256 is in the manifest and checked *before* anything is unpickled, and a
bundle pickled under another scikit-learn version is refused up front instead
of failing (or silently mis-predicting) halfway through a request.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import joblib

from .errors import BundleError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"
_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib", "sentence-transformers", "torch", "triage")


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a bundle depends on (None when one is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_sha(cwd: str | Path | None = None) -> str:
    """Short commit of the code that trains (this package's repository), or ``nogit``.

    The package's folder, not the working directory: a bundle records which code made it,
    wherever the command was run from.
    """
    cwd = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or "nogit"
    except (OSError, subprocess.SubprocessError):
        return "nogit"


def new_bundle_id(now: datetime | None = None, sha: str | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{sha or git_sha()}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_bundle(
    models_dir: str | Path,
    heads: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    bundle_id: str | None = None,
    extras: Callable[[Path, str], None] | None = None,
    signing_key: str | bytes | None = None,
) -> Path:
    """Write ``heads`` (name → fitted estimator) and ``manifest`` atomically; return the folder.

    ``extras(tmp_dir, bundle_id)`` may add files (report, plots) before checksums are taken,
    so they are covered by the manifest too. With a ``signing_key`` (entry points pass
    ``TRIAGE_BUNDLE_SIGNING_KEY``) the manifest carries an HMAC over the checksums.
    """
    from .bundle_trust import SIGNATURE, signature

    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    bundle_id = bundle_id or new_bundle_id()
    final = _free_name(models_dir, bundle_id)
    tmp = models_dir / f"{_TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        entries = {}
        for name, model in heads.items():
            fname = f"{name}.joblib"
            joblib.dump(model, tmp / fname, compress=3)
            entries[name] = {**dict(manifest.get("heads", {}).get(name, {})), "file": fname}
        if extras is not None:
            extras(tmp, final.name)
        full = {
            **dict(manifest),
            "format_version": FORMAT_VERSION,
            "bundle_id": final.name,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "libraries": library_versions(),
            "heads": entries,
            "files": {p.relative_to(tmp).as_posix(): file_sha256(p) for p in _files(tmp)},
        }
        if signing_key:
            full[SIGNATURE] = signature(full, signing_key)
        _write_json(tmp / MANIFEST, full)
        if final.exists():
            raise BundleError(f"bundle folder appeared while writing: {final}")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _free_name(models_dir: Path, bundle_id: str) -> Path:
    final, n = models_dir / bundle_id, 2
    while final.exists():
        final, n = models_dir / f"{bundle_id}-{n}", n + 1
    return final


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass
class Bundle:
    path: Path
    manifest: dict
    heads: dict[str, Any]

    @property
    def bundle_id(self) -> str:
        return str(self.manifest["bundle_id"])


def read_manifest(path: str | Path) -> dict:
    """The manifest of a bundle folder, without unpickling anything."""
    path = Path(path)
    if not path.is_dir() or path.name.startswith(_TMP_PREFIX):
        raise BundleError(f"bundle: expected a bundle folder, got {str(path)!r}")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"bundle {path}: expected {MANIFEST}, got no such file") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle {path}: {MANIFEST} is not valid JSON ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"bundle {path}: expected format version {FORMAT_VERSION}, got {manifest.get('format_version')!r}"
        )
    return manifest


# ---------------------------------------------------------------- manifest accessors
# The one reading of the manifest's fields (format version ``FORMAT_VERSION``, checked by
# ``read_manifest``); training, serving and reports call these instead of guessing keys.
def encoder_ref(manifest: Mapping[str, Any]) -> dict | None:
    """The encoder the heads were trained with (``{"kind": ...}``), or None for TF-IDF only."""
    ref = manifest.get("encoder")
    return dict(ref) if isinstance(ref, Mapping) and ref.get("kind") else None


def created_at(manifest: Mapping[str, Any]) -> str | None:
    """When the bundle was written (ISO 8601, UTC)."""
    return manifest.get("created_at")


def head_metrics(manifest: Mapping[str, Any]) -> dict[str, dict]:
    """Holdout metrics per head (accuracy, macro-F1, ECE, decisions at the thresholds)."""
    return {name: dict(entry.get("metrics") or {}) for name, entry in (manifest.get("heads") or {}).items()}


def thresholds_of(manifest: Mapping[str, Any], head: str) -> dict[str, dict]:
    """Per-class ``{"apply": x, "suggest": y}`` thresholds of one head ({} for an unknown head)."""
    return dict(((manifest.get("heads") or {}).get(head) or {}).get("thresholds") or {})


def split_of(manifest: Mapping[str, Any], default_fractions: Any) -> tuple[Any, int]:
    """(fractions, seed) of the train/calibration/holdout split the bundle was trained on."""
    config = manifest.get("config") or {}
    return config.get("fractions") or default_fractions, int(config.get("seed", 0))


def bundle_encoder_ref(path: str | Path) -> dict | None:
    """``encoder_ref`` of a bundle folder, read without unpickling anything."""
    return encoder_ref(read_manifest(path))


def check_versions(manifest: Mapping[str, Any], path: Path) -> None:
    """Refuse a bundle pickled under another scikit-learn: its objects may not load as trained."""
    import sklearn

    trained = (manifest.get("libraries") or {}).get("scikit-learn")
    if trained != sklearn.__version__:
        raise BundleError(
            f"bundle {path.name} was trained with scikit-learn {trained}, this environment has "
            f"{sklearn.__version__}: retrain it here, or install scikit-learn=={trained}"
        )


def verify_files(manifest: Mapping[str, Any], path: Path) -> None:
    """Every listed file must exist with its sha256, and no unlisted joblib may sit beside them."""
    listed = manifest.get("files") or {}
    for rel, digest in listed.items():
        target = (path / rel).resolve()
        if not target.is_relative_to(path.resolve()):
            raise BundleError(f"bundle {path.name}: file {rel!r} lies outside the bundle folder")
        if not target.is_file():
            raise BundleError(f"bundle {path.name}: expected file {rel}, got nothing")
        actual = file_sha256(target)
        if actual != digest:
            raise BundleError(
                f"bundle {path.name}: checksum of {rel} does not match the manifest "
                f"(expected {digest[:12]}…, got {actual[:12]}…): refusing to load "
                f"a modified file"
            )
    for p in _files(path):
        if p.suffix == ".joblib" and p.relative_to(path).as_posix() not in listed:
            raise BundleError(f"bundle {path.name}: unlisted file {p.name}: refusing to load")


def load_bundle(path: str | Path, signing_key: str | bytes | None = None) -> Bundle:
    """Load a bundle folder after checking format, signature, scikit-learn version and every
    checksum. With a ``signing_key`` (the service passes ``TRIAGE_BUNDLE_SIGNING_KEY``) an
    unsigned or mis-signed bundle is refused before anything is unpickled."""
    from .bundle_trust import verify_signature

    path = Path(path)
    manifest = read_manifest(path)
    if signing_key:
        verify_signature(manifest, signing_key, path)
    check_versions(manifest, path)
    verify_files(manifest, path)
    heads = {}
    for name, entry in (manifest.get("heads") or {}).items():
        rel = entry.get("file")
        if rel not in (manifest.get("files") or {}):
            raise BundleError(f"bundle {path.name}: head {name!r} file {rel!r} has no checksum")
        heads[name] = joblib.load(path / rel)
    return Bundle(path=path, manifest=manifest, heads=heads)


def sign_bundle(path: str | Path, key: str | bytes) -> dict[str, str]:
    """Sign an existing bundle in place (its files must match the manifest first)."""
    from .bundle_trust import SIGNATURE, signature

    path = Path(path)
    manifest = read_manifest(path)
    verify_files(manifest, path)
    manifest[SIGNATURE] = signature(manifest, key)
    tmp = path / f".{MANIFEST}.signing"
    tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path / MANIFEST)
    return manifest[SIGNATURE]
