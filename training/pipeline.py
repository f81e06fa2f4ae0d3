"""Training: export → split → candidate heads → calibration thresholds → holdout report → bundle.

The split is by ticket and a deterministic function of a hash of the normalised
text, so the same ticket lands on the same side in every file that contains it
(the two shared exports hold the same tickets) and in every run. Hash buckets
are stratified in expectation (a ticket's side never depends on its labels,
which is what keeps files with different label columns in agreement).

* train: every fit (vectorisers, base models, their cross-fitted calibration);
* calibration: choosing the thresholds, and (pooled with the out-of-fold predictions on
  train, which no model saw when fitted) the winning candidate on macro-F1;
* holdout: only measured, once, at the end, for the report.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from triage.bundle import git_sha, new_bundle_id, write_bundle
from triage.classifiers import KINDS, Features, TextHead, fit_candidates, make_reference
from triage.encoder import CachedEncoder, Encoder, HashingEncoder, MiniLMEncoder, load_encoder
from triage.reports.confidence import holdout_scores
from triage.reports.drift import text_profile
from triage.thresholds import ThresholdRule, choose_thresholds

from .evaluation import head_metrics, reference_metrics
from .mapping import Dataset, Mapping as ColumnMapping, load_export, load_mapping

log = logging.getLogger(__name__)

SPLITS = ("train", "calibration", "holdout")
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


@dataclass
class TrainConfig:
    """Everything that decides a run, logged with it (MLflow params, the manifest)."""

    data_path: str
    mapping_path: str
    target_precision: float = 0.95
    suggest_precision: float = 0.60
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    seed: int = 0
    cv: int = 5
    candidates: tuple[str, ...] = KINDS
    heads: tuple[str, ...] | None = None
    svc_c: float = 0.5
    lr_c: float = 10.0
    class_weight: str | None = "balanced"
    encoder: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    """What ``train`` returns: the report (training.evaluation's shape), bundle and models."""

    report: dict
    manifest: dict
    heads: dict[str, TextHead]
    config: TrainConfig
    bundle_path: Path | None = None
    report_dir: Path | None = None

    @property
    def bundle_id(self) -> str:
        return str(self.report.get("bundle_id"))


# ---------------------------------------------------------------------------- split
def split_key(text: str) -> str:
    """The ticket identity used for splitting: the model text with whitespace collapsed."""
    return " ".join(text.split())


def assign_splits(texts: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  seed: int = 0) -> np.ndarray:
    """``train`` / ``calibration`` / ``holdout`` per row, a pure function of (text, seed)."""
    if len(fractions) != 3 or not math.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"split fractions: expected three positive numbers summing to 1, "
                         f"got {tuple(fractions)}")
    edges = np.cumsum(fractions)[:2]
    u = np.asarray([int.from_bytes(hashlib.sha256(f"{seed}:{split_key(t)}".encode()).digest()[:8],
                                   "big") / 2.0 ** 64 for t in texts])
    return np.asarray(SPLITS, dtype=object)[np.searchsorted(edges, u, side="right")]


def holdout_key(texts: Sequence[str], splits: np.ndarray) -> str:
    """Identifies the holdout rows, so promotion compares bundles on the same tickets."""
    keys = sorted({split_key(t) for t, s in zip(texts, splits) if s == "holdout"})
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- encoder
def resolve_encoder(encoder: Encoder | str | None) -> Encoder:
    """None or ``minilm`` → MiniLM behind the on-disk cache; ``hashing`` → the test encoder."""
    if encoder is None or encoder == "minilm":
        return CachedEncoder(MiniLMEncoder())
    if encoder == "hashing":
        return HashingEncoder()
    if isinstance(encoder, str):
        raise ValueError(f"encoder: expected 'minilm' or 'hashing', got {encoder!r}")
    return encoder


# ---------------------------------------------------------------------------- training
def train(data_path: str | Path, mapping_path: str | Path, out_dir: str | Path | None, *,
          encoder: Encoder | str | None = None, target_precision: float = 0.95,
          heads: Sequence[str] | None = None, candidates: Sequence[str] = KINDS,
          fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0, cv: int = 5,
          suggest_precision: float = 0.60, class_weight: str | None = "balanced",
          progress: bool = True, n_threads: int = 1) -> TrainResult:
    """Train every head of the mapping and (when ``out_dir`` is given) write the bundle.

    Base models are fitted with ``class_weight="balanced"`` by default (macro-F1 counts a rare
    class like a big one: on the shared ``category`` labels this lifted holdout macro-F1 from
    0.41 to 0.56) while the calibrator on top stays unweighted, so probabilities still match
    real frequencies. BLAS threads are limited to ``n_threads``: on a shared 2-core machine an oversubscribed
    OpenBLAS made a small logistic regression 50× slower.
    """
    mapping = load_mapping(mapping_path)
    data = load_export(data_path, mapping)
    wanted = list(heads or mapping.labels)
    unknown = set(wanted) - set(mapping.labels)
    if unknown:
        raise ValueError(f"heads: expected some of {sorted(mapping.labels)}, got {sorted(unknown)}")
    needs_vectors = any(k in ("embedding", "combined") for k in candidates)
    enc = resolve_encoder(encoder) if needs_vectors else None
    config = TrainConfig(str(data_path), str(mapping_path), target_precision, suggest_precision,
                         tuple(fractions), seed, cv, tuple(candidates), tuple(wanted),
                         class_weight=class_weight, encoder=enc.reference() if enc else {})
    rule = ThresholdRule(target_precision=target_precision, suggest_precision=suggest_precision)
    splits = assign_splits(data.texts, fractions, seed)
    vectors = enc.encode(data.texts, progress=progress) if enc else None  # torch: all threads
    X = Features(data.texts, vectors)
    with threadpool_limits(n_threads):
        fitted, head_reports, skipped = {}, {}, {}
        for name in _progress(wanted, progress, "heads"):
            model, rep = train_head(name, X, data.labels[name], splits, config, rule, progress)
            if model is not None:
                fitted[name], head_reports[name] = model, rep
            else:
                skipped[name] = rep["n"]
    report = build_report(data, mapping, config, splits, head_reports)
    report["skipped_heads"] = skipped  # too few labelled rows or classes: no model, said so
    # the confidence report's text-drift reference (token counts of the training rows)
    report["text_profile"] = text_profile(t for t, s in zip(data.texts, splits) if s == "train")
    manifest = build_manifest(data, mapping, config, rule, report, fitted)
    result = TrainResult(report, manifest, fitted, config)
    if out_dir is not None and fitted:
        result.bundle_path = write_bundle(out_dir, fitted, manifest, bundle_id=new_bundle_id(),
                                          extras=lambda tmp, bid: _write_report(result, tmp, bid))
        result.report_dir = result.bundle_path / "report"
    return result


def train_head(name: str, X: Features, labels: Sequence[str | None], splits: np.ndarray,
               config: TrainConfig, rule: ThresholdRule, progress: bool
               ) -> tuple[TextHead | None, dict]:
    """Fit the candidates of one head, pick the winner on calibration, report on holdout."""
    y = np.asarray([v if v is not None else "" for v in labels], dtype=object)
    has = np.asarray([v is not None for v in labels])
    idx = {s: np.flatnonzero(has & (splits == s)) for s in SPLITS}
    n = {s: int(len(i)) for s, i in idx.items()}
    if len(set(y[idx["train"]])) < 2 or n["calibration"] == 0 or n["holdout"] == 0:
        log.warning("head %s skipped: too few labelled rows or classes (%s)", name, n)
        return None, {"skipped": True, "n": n}
    params = dict(svc_c=config.svc_c, lr_c=config.lr_c, class_weight=config.class_weight,
                  cv=config.cv, random_state=config.seed, progress=progress)
    cands = fit_candidates(X.take(idx["train"]), y[idx["train"]], config.candidates, **params)
    scores, probas = {}, {}
    y_sel = np.concatenate([y[idx["train"]], y[idx["calibration"]]])
    for kind, model in cands.items():
        probas[kind] = {s: model.predict_proba(X.take(idx[s])) for s in ("calibration", "holdout")}
        classes = list(model.classes_)
        scores[kind] = {s: head_metrics(y[idx[s]], probas[kind][s], classes)["macro_f1"]
                        for s in ("calibration", "holdout")}
        # selection: out-of-fold train predictions pooled with the calibration split, so a
        # head with 60 calibration rows (urgency among incidents) is not chosen on noise
        pooled = np.vstack([model.oof_proba_, probas[kind]["calibration"]])
        scores[kind]["selection"] = head_metrics(y_sel, pooled, classes)["macro_f1"]
    chosen = max(cands, key=lambda k: (scores[k]["selection"], -list(cands).index(k)))
    model, classes = cands[chosen], [str(c) for c in cands[chosen].classes_]
    thresholds = choose_thresholds(y[idx["calibration"]], probas[chosen]["calibration"], classes, rule)
    ref = make_reference().fit([X.texts[i] for i in idx["train"]], y[idx["train"]])
    ref_pred = ref.predict([X.texts[i] for i in idx["holdout"]])
    return model, {
        "chosen": chosen, "classes": classes, "n": n,
        "candidates": {k: v["selection"] for k, v in scores.items()},
        "candidates_calibration": {k: v["calibration"] for k, v in scores.items()},
        "candidates_holdout": {k: v["holdout"] for k, v in scores.items()},
        "metrics": head_metrics(y[idx["holdout"]], probas[chosen]["holdout"], classes, thresholds),
        "calibration_metrics": head_metrics(y[idx["calibration"]], probas[chosen]["calibration"],
                                            classes, thresholds),
        "reference": reference_metrics(y[idx["holdout"]], ref_pred),
        "thresholds": thresholds,
        # per-ticket top-1 label + probability: the confidence report's what-if for thresholds
        "holdout_scores": holdout_scores(y[idx["holdout"]], probas[chosen]["holdout"], classes),
    }


def _progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc)


# ---------------------------------------------------------------------------- report + manifest
def build_report(data: Dataset, mapping: ColumnMapping, config: TrainConfig, splits: np.ndarray,
                 head_reports: Mapping[str, dict]) -> dict:
    split_counts = {s: int((splits == s).sum()) for s in SPLITS}
    dropped = dict(data.counts["dropped"])
    for head, rare in (data.counts.get("rare_classes") or {}).items():
        if rare.get("rows"):
            dropped[f"rare_class.{head}"] = rare["rows"]
    return {
        "bundle_id": None, "git_sha": git_sha(),
        "data": {"path": str(data.path), "sha256": data.sha256, "rows": data.counts["rows_read"],
                 "rows_kept": data.counts["rows_kept"], "split": split_counts,
                 "fractions": list(config.fractions), "seed": config.seed,
                 "holdout_key": holdout_key(data.texts, splits),
                 "labelled": data.counts["labelled"], "missing_label": data.counts["missing_label"],
                 "filtered_out": data.counts["filtered_out"],
                 "rare_classes": data.counts["rare_classes"], "mapping": mapping.source},
        "dropped_rows": dropped,
        "config": _jsonable(config.__dict__),
        "heads": {h: r for h, r in head_reports.items()},
        "priority": mapping.priority_config(),
    }


def build_manifest(data: Dataset, mapping: ColumnMapping, config: TrainConfig, rule: ThresholdRule,
                   report: Mapping, fitted: Mapping[str, TextHead]) -> dict:
    heads = {}
    for name, model in fitted.items():
        rep = report["heads"][name]
        m = rep["metrics"]
        heads[name] = {
            "kind": model.kind, "classes": rep["classes"], "thresholds": rep["thresholds"],
            "where": mapping.labels[name].where or None,
            "metrics": {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece_15": m["ece_15"],
                        "n": m["n"], "at_thresholds": {k: m["at_thresholds"].get(k)
                                                       for k in ("applied", "suggested")},
                        "reference_macro_f1": rep["reference"]["macro_f1"]}}
    return _jsonable({
        "data": {k: report["data"][k] for k in ("path", "sha256", "rows", "rows_kept", "split",
                                                "holdout_key", "labelled")},
        "dropped_rows": report["dropped_rows"], "mapping": mapping.source,
        "encoder": config.encoder or None, "threshold_rule": rule.to_dict(),
        "priority": mapping.priority_config(), "heads": heads, "config": config.__dict__,
    })


def _write_report(result: TrainResult, folder: Path, bundle_id: str) -> None:
    """report.json (always) and the plots + HTML of training.evaluation, inside the bundle."""
    result.report["bundle_id"] = bundle_id
    out = folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_jsonable(result.report), indent=2), "utf-8")
    try:
        from .evaluation import write_report
        write_report(_jsonable(result.report), out)
    except Exception as exc:  # plots are a nicety; the bundle and report.json are not
        log.warning("report plots not written: %s", exc)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types (numpy scalars, tuples, NaN → None, paths → str)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ---------------------------------------------------------------------------- evaluate
def evaluate_bundle(bundle_path: str | Path, data_path: str | Path, mapping_path: str | Path, *,
                    split: str = "all", encoder: Encoder | str | None = None,
                    fractions: Sequence[float] | None = None, seed: int | None = None) -> dict:
    """Score an existing bundle on an export (all rows, or only the rows its split puts in
    ``holdout``: the split is a function of the text, so it is the same tickets as in training).
    """
    from triage.predict import Triager

    tri = Triager.from_bundle(bundle_path, encoder=None if encoder is None
                              else resolve_encoder(encoder))
    ref = tri.manifest.get("encoder") or {}
    if encoder is None and ref.get("kind") == "minilm":
        tri = Triager(tri._bundle, encoder=CachedEncoder(load_encoder(ref)))  # reuse cached vectors
    mapping = load_mapping(mapping_path)
    data = load_export(data_path, mapping)
    cfg = tri.manifest.get("config") or {}
    splits = assign_splits(data.texts, fractions or cfg.get("fractions") or DEFAULT_FRACTIONS,
                           cfg.get("seed", 0) if seed is None else seed)
    keep = np.ones(len(data), bool) if split == "all" else splits == split
    with threadpool_limits(1):
        rows = np.flatnonzero(keep)
        X = tri.features_for_texts([data.texts[i] for i in rows]) if len(rows) else None
        heads = {}
        for name, model in tri.models.items():
            if name not in data.labels:
                continue
            has = [j for j, i in enumerate(rows) if data.labels[name][i] is not None]
            if not has:
                continue
            y = [data.labels[name][rows[j]] for j in has]
            proba = model.predict_proba(X.take(has))
            thresholds = tri.manifest["heads"][name].get("thresholds") or {}
            heads[name] = {"chosen": tri.manifest["heads"][name].get("kind"),
                           "metrics": head_metrics(y, proba, [str(c) for c in model.classes_],
                                                   thresholds),
                           "thresholds": thresholds}
    return _jsonable({"bundle_id": tri.bundle_id, "split": split,
                      "data": {"path": str(data.path), "sha256": data.sha256,
                               "rows": data.counts["rows_read"], "rows_scored": int(keep.sum())},
                      "dropped_rows": data.counts["dropped"], "heads": heads})
