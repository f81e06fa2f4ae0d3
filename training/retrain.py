"""``triage retrain``: from agents' corrections to a challenger, graded against the champion.

Steps (each a function here, so tests and the scheduler call them one by one):

1. find the champion (``<models>/CHAMPION``, else the newest bundle) and its training
   config: its export, mapping, seed and split fractions, so the challenger splits alike;
2. gather the labels of the store (:mod:`training.retrain_data`) and write the retrain
   export = historical export + store tickets with their final human labels;
3. train the challenger with the same pipeline (``training.pipeline.train``);
4. score champion AND challenger on the frozen holdout (``<models>/HOLDOUT.json``) and on
   the recent slice (store tickets that the split keeps out of training): the side-by-side
   table per head (macro-F1, per-class F1, ECE, coverage at the target precision, applied
   coverage/precision at each bundle's own thresholds);
5. the gate (:mod:`training.gate`); log the run and the comparison to MLflow
   (:mod:`training.tracking`); promote when it passes (or ``force``, recorded), else the
   challenger stays a registered version with its reasons as tags and in
   ``<models>/retrain-log.jsonl``.

Services pick the new champion up by ``POST /v1/admin/reload`` or SIGHUP (``notify_reload``).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from triage.bundle import thresholds_of
from triage.champion import champion_bundle, pointer_file, read_pointer, write_pointer
from triage.classifiers import predict_labelled
from triage.errors import TriageError
from triage.thresholds import TARGET_PRECISION

from .evaluation import head_metrics
from .gate import GateConfig, GateDecision, decide
from .mapping import load_export, load_mapping
from .pipeline import DEFAULT_FRACTIONS, assign_splits, resolve_encoder, train
from .retrain_data import HOLDOUT_FILE, base_export, build_export, freeze_holdout, holdout_mask, ticket_labels

log = logging.getLogger(__name__)

LOG_FILE = "retrain-log.jsonl"


@dataclass
class RetrainResult:
    challenger_id: str
    challenger_path: str
    champion_id: str | None
    decision: GateDecision
    table: dict
    promoted: bool = False
    forced: bool = False
    data: dict = field(default_factory=dict)
    mlflow: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["decision"] = self.decision.to_dict()
        return out


# ---------------------------------------------------------------------------- champion
def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text("utf-8"))


# ---------------------------------------------------------------------------- scoring
def coverage_at(proba: np.ndarray, y: Sequence[str], classes: Sequence[str], target: float) -> float:
    """Largest share of rows whose top-1 is kept at a global threshold with precision >= target."""
    top = proba.argmax(axis=1)
    conf = proba[np.arange(len(top)), top]
    correct = np.asarray([classes[j] == str(t) for j, t in zip(top, y)], float)
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    ends = np.flatnonzero(np.r_[conf[order][1:] != conf[order][:-1], True])  # ties stay together
    ok = ends[hits[ends] / n[ends] >= target]
    return float((ok.max() + 1) / len(order)) if len(ok) else 0.0


def score_bundle(
    bundle: Path, texts: Sequence[str], labels: dict[str, list], rows: np.ndarray, target: float, encoder=None
) -> dict[str, dict]:
    """Per head, on ``rows``: macro-F1, per-class F1, ECE, coverage at target, applied figures."""
    from triage.predict import Triager

    tri = Triager.from_bundle(bundle, encoder=encoder)
    if len(rows) == 0:
        return {}
    with threadpool_limits(1):
        X = tri.features_for_texts([texts[i] for i in rows])
        out = {}
        for head, model in tri.models.items():
            has = [j for j, i in enumerate(rows) if labels.get(head) and labels[head][i] is not None]
            if not has:
                continue
            y = [str(labels[head][rows[j]]) for j in has]
            proba, picked = predict_labelled(model, X.take(has))
            classes = [str(c) for c in model.classes_]
            thresholds = thresholds_of(tri.manifest, head)
            m = head_metrics(y, proba, classes, thresholds, pred_idx=picked)
            applied = (m.get("at_thresholds") or {}).get("applied") or {}
            out[head] = {
                "n": m["n"],
                "macro_f1": m["macro_f1"],
                "ece_15": m["ece_15"],
                "coverage_at_target": coverage_at(proba, y, classes, target),
                "applied_coverage": applied.get("coverage"),
                "applied_precision": applied.get("precision"),
                "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()},
            }
    return _clean(out)


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def side_by_side(champion: dict, challenger: dict) -> dict:
    """head -> {"champion": metrics, "challenger": metrics} (a missing side is None)."""
    return {
        h: {"champion": champion.get(h), "challenger": challenger.get(h)}
        for h in list(champion) + [h for h in challenger if h not in champion]
    }


def render_table(tables: dict[str, dict]) -> str:
    """The side-by-side table as text (what ``triage retrain`` prints)."""
    lines = []
    keys = ("n", "macro_f1", "ece_15", "coverage_at_target", "applied_coverage", "applied_precision")
    for slice_name, table in tables.items():
        lines.append(f"== {slice_name}")
        lines.append(f"{'head':<12}{'metric':<20}{'champion':>10}{'challenger':>11}{'delta':>9}")
        for head, row in table.items():
            a, b = row.get("champion") or {}, row.get("challenger") or {}
            for k in keys:
                x, y = a.get(k), b.get(k)
                d = (
                    f"{y - x:+.4f}"
                    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and k != "n"
                    else ""
                )
                lines.append(f"{head:<12}{k:<20}{_f(x):>10}{_f(y):>11}{d:>9}")
            for c in sorted(set(a.get("per_class_f1") or {}) | set(b.get("per_class_f1") or {})):
                x, y = (a.get("per_class_f1") or {}).get(c), (b.get("per_class_f1") or {}).get(c)
                lines.append(f"{head:<12}{('f1 ' + c)[:19]:<20}{_f(x):>10}{_f(y):>11}")
    return "\n".join(lines)


def _f(x) -> str:
    if x is None:
        return "-"
    return str(x) if isinstance(x, int) else f"{x:.4f}"


# ---------------------------------------------------------------------------- the retrain
def retrain(
    models: str | Path,
    *,
    store=None,
    data: str | Path | None = None,
    mapping: str | Path | None = None,
    encoder=None,
    force: bool = False,
    gate: GateConfig = GateConfig(),
    without_flagged: bool = False,
    candidates: Sequence[str] | None = None,
    cv: int | None = None,
    tracking_uri: str | None = None,
    log_mlflow: bool = True,
    reason: str | None = None,
    progress: bool = False,
    fleet_database: str | None = None,
    signing_key: str | None = None,
) -> RetrainResult:
    """One retrain: gather, train, compare on the frozen holdout, gate, maybe promote."""
    models = Path(models)
    champ = champion_bundle(models)
    cfg = _manifest(champ).get("config", {}) if champ else {}
    data = Path(data or base_export(cfg.get("data_path") or ""))
    mapping = Path(mapping or cfg.get("mapping_path") or "")
    if not data.is_file() or not mapping.is_file():
        raise TriageError(
            f"retrain needs the historical export and its mapping: got data={data}, "
            f"mapping={mapping} (pass --data/--mapping)"
        )
    cmap = load_mapping(mapping)
    fractions, seed = tuple(cfg.get("fractions") or DEFAULT_FRACTIONS), int(cfg.get("seed", 0))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    export = models / "retrain" / f"{stamp}.csv"
    info = _gather(store, data, cmap, export)
    if without_flagged:
        info["label_quality"] = _drop_flagged(export, mapping, fractions, seed)
    enc = resolve_encoder(encoder) if encoder is not None else None
    kwargs = {
        k: v
        for k, v in {
            "candidates": tuple(candidates or cfg.get("candidates") or ()) or None,
            "cv": cv or cfg.get("cv"),
            "heads": cfg.get("heads") or None,
            "class_weight": cfg.get("class_weight"),
        }.items()
        if v is not None
    }
    result = train(
        export,
        mapping,
        models,
        encoder=enc if enc is not None else (cfg.get("encoder") or {}).get("kind"),
        fractions=fractions,
        seed=seed,
        target_precision=float(cfg.get("target_precision", TARGET_PRECISION)),
        progress=progress,
        signing_key=signing_key,
        **kwargs,
    )
    if result.bundle_path is None:
        raise TriageError("the challenger trained no head (too few labelled rows?)")
    frozen = freeze_holdout(
        models / HOLDOUT_FILE,
        cfg.get("data_path") or data,
        cmap,
        bundle_id=champ.name if champ else result.bundle_id,
        fractions=fractions,
        seed=seed,
    )
    tables, extra = compare(
        champ,
        Path(result.bundle_path),
        export,
        cmap,
        frozen,
        float(cfg.get("target_precision", TARGET_PRECISION)),
        fractions,
        seed,
        enc,
    )
    decision = decide(tables["frozen_holdout"], gate) if champ else GateDecision(True)
    out = RetrainResult(
        result.bundle_id,
        str(result.bundle_path),
        champ.name if champ else None,
        decision,
        tables,
        forced=force and not decision.passed,
        data={**info, **extra, "export": str(export)},
    )
    if log_mlflow:
        out.mlflow = _log_and_maybe_promote(result, out, tracking_uri, models, reason, fleet_database)
    elif decision.passed or force:
        out.promoted = _promote_pointer_only(models, out)
    _append_log(models, out)
    return out


def _gather(store, data: Path, cmap, export: Path) -> dict:
    base = load_export(data, cmap)
    known = {h: {v for v in vals if v is not None} for h, vals in base.labels.items()}
    if store is None:
        from .retrain_data import StoreLabels

        labels = StoreLabels(counts={"store": "none"})
    else:
        with store.session() as session:
            labels = ticket_labels(session, list(cmap.labels), known)
    return build_export(data, cmap, labels, export)


def _drop_flagged(export: Path, mapping: Path, fractions, seed) -> dict:
    from . import label_quality as lq

    data = load_export(export, load_mapping(mapping))
    flags, summary = lq.flag_dataset(data)
    lq.write_review_list(flags, export.with_suffix(".flagged.csv"))
    keep = lq.holdout_rows(data, fractions, seed)
    counts = lq.without_flagged(export, mapping, flags, export, keep_rows=keep)
    return {"summary": summary, **counts}


def compare(
    champ: Path | None,
    chall: Path,
    export: Path,
    cmap,
    frozen: dict,
    target: float,
    fractions,
    seed: int,
    encoder=None,
) -> tuple[dict, dict]:
    """Score both bundles on the frozen holdout and on the recent (store) holdout slice."""
    data = load_export(export, cmap)
    mask = np.asarray(holdout_mask(data.texts, frozen))
    splits = assign_splits(data.texts, fractions, seed)
    ids = data.metadata.get("id") or [None] * len(data)
    recent = np.asarray([str(i or "").startswith("store:") for i in ids]) & (splits == "holdout")
    leak = int((mask & (splits != "holdout")).sum())
    if leak:
        log.warning("%d frozen-holdout tickets fell in the challenger's training split", leak)
    tables = {}
    for name, rows in (("frozen_holdout", np.flatnonzero(mask)), ("recent", np.flatnonzero(recent))):
        a = score_bundle(champ, data.texts, data.labels, rows, target, encoder) if champ else {}
        b = score_bundle(chall, data.texts, data.labels, rows, target, encoder)
        tables[name] = side_by_side(a, b)
    return tables, {
        "frozen_rows": int(mask.sum()),
        "recent_rows": int(recent.sum()),
        "frozen_in_training": leak,
    }


# ---------------------------------------------------------------------------- bookkeeping
def _log_and_maybe_promote(
    result, out: RetrainResult, tracking_uri, models: Path, reason, fleet_database: str | None = None
) -> dict:
    from . import tracking

    run_id = tracking.log_training_run(result, tracking_uri=tracking_uri)
    mc, _ = tracking.client(tracking_uri)
    version = tracking.find_version(mc, tracking.DEFAULT_MODEL_NAME, out.challenger_id)
    _log_comparison(mc, run_id, version, out)
    info = {"run_id": run_id, "version": str(version.version)}
    if not (out.decision.passed or out.forced):
        return info
    why = reason or ("retrain --force over: " + "; ".join(out.decision.reasons) if out.forced else None)
    try:
        res = tracking.promote(
            version.version,
            force=out.forced or False,
            reason=why,
            decision=out.decision,
            tracking_uri=tracking_uri,
            champion_file=pointer_file(models),
            fleet_database=fleet_database,
        )
    except tracking.PromotionRefused as exc:  # defensive: a passed or forced decision is not refused
        out.decision.passed = False
        out.decision.reasons += [f"tracking: {r}" for r in exc.result.reasons]
        info["promotion"] = exc.result.to_dict()
        return info
    out.promoted = res.promoted
    info["promotion"] = res.to_dict()
    return info


def _log_comparison(mc, run_id: str, version, out: RetrainResult) -> None:
    """The side-by-side figures and the gate's verdict, on the challenger's run and version."""
    import time
    from mlflow.entities import Metric
    from .tracking_fields import safe_name

    now, metrics = int(time.time() * 1000), []
    for slice_name, table in out.table.items():
        for head, row in table.items():
            for side in ("champion", "challenger"):
                for k, v in (row.get(side) or {}).items():
                    if isinstance(v, (int, float)) and k != "n":
                        metrics.append(
                            Metric(safe_name(f"compare.{slice_name}.{head}.{k}.{side}"), float(v), now, 0)
                        )
    for i in range(0, len(metrics), 1000):
        mc.log_batch(run_id, metrics=metrics[i : i + 1000])
    mc.log_dict(run_id, out.to_dict(), "retrain/comparison.json")
    tags = {
        "gate.passed": str(out.decision.passed).lower(),
        "gate.reasons": json.dumps(out.decision.reasons)[:5000],
        "gate.forced": str(out.forced).lower(),
        "gate.champion": out.champion_id or "",
    }
    for k, v in tags.items():
        mc.set_tag(run_id, k, v)
        mc.set_model_version_tag(version.name, version.version, k, v)


def _promote_pointer_only(models: Path, out: RetrainResult) -> bool:
    """No MLflow (tests, air-gapped): move the CHAMPION pointer the way tracking does."""
    prev = read_pointer(pointer_file(models))
    write_pointer(
        {
            "bundle_id": out.challenger_id,
            "path": out.challenger_path,
            "mlflow": None,
            "promoted_at": _now(),
            "promoted_by": "retrain",
            "forced": out.forced,
            "reason": "; ".join(out.decision.reasons) or None,
            "previous": None
            if not prev
            else {"bundle_id": prev.get("bundle_id"), "path": prev.get("resolved_path"), "version": None},
        },
        pointer_file(models),
    )
    return True


def _append_log(models: Path, out: RetrainResult) -> None:
    record = {
        "at": _now(),
        "challenger": out.challenger_id,
        "champion": out.champion_id,
        "passed": out.decision.passed,
        "reasons": out.decision.reasons,
        "forced": out.forced,
        "promoted": out.promoted,
        "mlflow": out.mlflow,
        "data": out.data,
    }
    with open(models / LOG_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def notify_reload(url: str, api_key: str | None = None, *, timeout: float = 30.0) -> dict:
    """``POST <url>/v1/admin/reload`` with ``{"wait": true}``: the service swaps, no restart."""
    req = urllib.request.Request(
        url.rstrip("/") + "/v1/admin/reload",
        data=b'{"wait": true}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


__all__ = [
    "retrain",
    "RetrainResult",
    "compare",
    "score_bundle",
    "coverage_at",
    "side_by_side",
    "render_table",
    "champion_bundle",
    "notify_reload",
]
