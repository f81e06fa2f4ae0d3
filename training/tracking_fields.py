"""What of a training report becomes MLflow params, metrics and tags.

Kept apart from :mod:`training.tracking` so the flattening (pure, easy to test) does not
need a tracking store. MLflow names allow letters, digits and ``_-. /:``; class labels
from an export may hold anything, so they are sanitised.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Mapping

_BAD = re.compile(r"[^A-Za-z0-9_\-. /:]+")
_MAX_PARAM = 6000


def safe_name(name: object) -> str:
    return _BAD.sub("_", str(name)).strip() or "_"


def _put(out: dict[str, float], key: str, value: Any) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        out[safe_name(key)] = float(value)


def flat_metrics(report: Mapping) -> dict[str, float]:
    """``<head>.accuracy``, ``<head>.macro_f1``, ``<head>.ece_15``, decisions, reference, classes."""
    out: dict[str, float] = {}
    for head, h in (report.get("heads") or {}).items():
        m = h.get("metrics") or {}
        for key in ("accuracy", "macro_f1", "ece_15", "n"):
            _put(out, f"{head}.{key}", m.get(key))
        for decision, d in (m.get("at_thresholds") or {}).items():
            if decision != "per_class" and isinstance(d, Mapping):
                _put(out, f"{head}.{decision}.coverage", d.get("coverage"))
                _put(out, f"{head}.{decision}.precision", d.get("precision"))
        for key in ("accuracy", "macro_f1"):
            _put(out, f"{head}.reference.{key}", (h.get("reference") or {}).get(key))
        for key, suffix in (("candidates", "macro_f1"), ("candidates_holdout", "holdout_macro_f1")):
            for name, f1 in (h.get(key) or {}).items():
                _put(
                    out,
                    f"{head}.candidate.{name}.{suffix}",
                    f1.get("macro_f1") if isinstance(f1, Mapping) else f1,
                )
        for label, c in (m.get("per_class") or {}).items():
            _put(out, f"{head}.class.{label}.f1", c.get("f1"))
    for reason, count in (report.get("dropped_rows") or {}).items():
        _put(out, f"dropped_rows.{reason}", count)
    return out


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
        return
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    out[safe_name(prefix)] = text[:_MAX_PARAM]


def flat_params(config: Mapping, report: Mapping) -> dict[str, str]:
    """The run's config, the data it read, and each head's chosen candidate."""
    out: dict[str, str] = {}
    _flatten("config", config or {}, out)
    data = report.get("data") or {}
    for key in ("path", "sha256", "rows"):
        if data.get(key) is not None:
            _flatten(f"data.{key}", data[key], out)
    for head, h in (report.get("heads") or {}).items():
        if h.get("chosen") is not None:
            out[safe_name(f"{head}.chosen")] = str(h["chosen"])
    out["bundle_id"] = str(report.get("bundle_id", ""))
    return out


def holdout_scores(report: Mapping) -> dict[str, float]:
    """Holdout macro-F1 per head: what the promotion gate compares."""
    out = {}
    for head, h in (report.get("heads") or {}).items():
        f1 = (h.get("metrics") or {}).get("macro_f1")
        if isinstance(f1, (int, float)) and math.isfinite(float(f1)):
            out[str(head)] = float(f1)
    return out


def holdout_key(report: Mapping) -> str:
    """Identifies the holdout: same data file and same split → same key.

    Uses ``data.holdout_key`` / ``data.holdout_sha256`` when the pipeline provides one
    (a hash of the holdout rows), else hashes the data sha256 with the split settings.
    """
    data = report.get("data") or {}
    for key in ("holdout_key", "holdout_sha256"):
        if data.get(key):
            return str(data[key])
    basis = {"sha256": data.get("sha256"), "split": data.get("split"), "seed": data.get("seed")}
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:16]
