"""Which bundle folders may be loaded at all, and proof that a manifest is ours.

A ``.joblib`` file is code, and its checksum sits in the bundle's own manifest:
whoever can write the folder can replace both. Two defences, both cheap:

* **Place.** Bundles load only from the models folder. The path is resolved
  first (symlinks followed), so a link inside the folder pointing elsewhere is
  refused too. Another folder is loaded only when the operator names it as
  trusted (``triage serve --trust PATH`` / ``TRIAGE_TRUSTED_BUNDLES``).
* **Signature.** With a signing key configured (``TRIAGE_BUNDLE_SIGNING_KEY``),
  training writes ``signature``: an HMAC-SHA256 over the bundle id and every
  file's checksum. Loading recomputes it before anything is unpickled and
  refuses a bundle that is unsigned or whose files or checksums were changed.
  Someone who can write the models folder but does not hold the key can no
  longer plant a pickle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import BundleError

SIGNATURE = "signature"
ALGORITHM = "hmac-sha256"
KEY_VARIABLE = "TRIAGE_BUNDLE_SIGNING_KEY"  # the setting entry points pass the key from


def _key(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def signed_text(manifest: Mapping[str, Any]) -> bytes:
    """What the signature covers: the bundle id and the checksum of every file."""
    return json.dumps(
        {"bundle_id": manifest.get("bundle_id"), "files": manifest.get("files") or {}},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")


def signature(manifest: Mapping[str, Any], key: str | bytes) -> dict[str, str]:
    mac = hmac.new(_key(key), signed_text(manifest), hashlib.sha256).hexdigest()
    return {"algorithm": ALGORITHM, "hmac": mac}


def verify_signature(manifest: Mapping[str, Any], key: str | bytes, path: Path) -> None:
    """Refuse an unsigned manifest, or one whose checksums the key did not sign."""
    given = manifest.get(SIGNATURE)
    if not isinstance(given, dict) or not isinstance(given.get("hmac"), str):
        raise BundleError(
            f"bundle {path.name} is not signed, and a signing key is configured: "
            f"refusing to load it (sign it with 'triage sign-bundle' if you "
            f"trust it)"
        )
    if given.get("algorithm") != ALGORITHM:
        raise BundleError(
            f"bundle {path.name}: expected signature algorithm {ALGORITHM}, got {given.get('algorithm')!r}"
        )
    expected = signature(manifest, key)["hmac"]
    if not hmac.compare_digest(expected, given["hmac"]):
        raise BundleError(
            f"bundle {path.name}: the manifest's signature does not match its "
            f"checksums (tampered, or signed with another key): refusing to load"
        )


def trusted_roots(models_dir: str | Path, trusted: Iterable[str | Path] = ()) -> list[Path]:
    return [Path(models_dir).resolve()] + [Path(p).resolve() for p in trusted if str(p)]


def check_location(path: str | Path, models_dir: str | Path, trusted: Iterable[str | Path] = ()) -> Path:
    """The resolved bundle folder, if it lies in the models folder or a trusted one."""
    real = Path(path).resolve()
    roots = trusted_roots(models_dir, trusted)
    if any(real == root or real.is_relative_to(root) for root in roots):
        return real
    raise BundleError(
        f"bundle {path} resolves to {real}, outside the models folder "
        f"{roots[0]}: refusing to load it (a bundle is code). Move it into the "
        f"models folder, or trust it explicitly with --trust PATH / "
        f"TRIAGE_TRUSTED_BUNDLES"
    )


def parse_trusted(spec: str | None) -> list[str]:
    """``TRIAGE_TRUSTED_BUNDLES``: paths separated by ``os.pathsep`` (``:``) or commas."""
    if not spec:
        return []
    return [p.strip() for part in spec.split(os.pathsep) for p in part.split(",") if p.strip()]
