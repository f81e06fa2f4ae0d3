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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from triage.bundle import bundle_encoder_ref, git_sha, new_bundle_id, split_of, thresholds_of, write_bundle
from triage.classifiers import (
    KINDS,
    Features,
    TextHead,
    _folds as cross_folds,  # the folds fit_candidates cuts: each must see two classes
    fit_candidates,
    fit_parts,
    macro_f1_idx,
    predict_labelled,
)
from triage.features import available_groups, context_strings, requester_history
from triage.errors import InputError
from triage.encoder import CachedEncoder, Encoder, HashingEncoder, MiniLMEncoder, load_encoder
from triage.reports.confidence import holdout_scores
from triage.reports.drift import text_profile
from triage.thresholds import (
    SUGGEST_PRECISION,
    TARGET_PRECISION,
    ThresholdRule,
    choose_thresholds,
    min_rows_for,
)

from .compressed import plain_export
from .evaluation import head_metrics, reference_metrics
from .mapping import Dataset, Mapping as ColumnMapping, load_export, load_mapping
from .memory_check import check_fits

log = logging.getLogger(__name__)

SPLITS = ("train", "calibration", "holdout")
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


@dataclass
class TrainConfig:
    """Everything that decides a run, logged with it (MLflow params, the manifest)."""

    data_path: str
    mapping_path: str
    target_precision: float = TARGET_PRECISION
    suggest_precision: float = SUGGEST_PRECISION
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


def assign_splits(
    texts: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> np.ndarray:
    """``train`` / ``calibration`` / ``holdout`` per row, a pure function of (text, seed)."""
    if len(fractions) != 3 or not math.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(
            f"split fractions: expected three positive numbers summing to 1, got {tuple(fractions)}"
        )
    edges = np.cumsum(fractions)[:2]
    u = np.asarray(
        [
            int.from_bytes(hashlib.sha256(f"{seed}:{split_key(t)}".encode()).digest()[:8], "big") / 2.0**64
            for t in texts
        ]
    )
    return np.asarray(SPLITS, dtype=object)[np.searchsorted(edges, u, side="right")]


def holdout_key(texts: Sequence[str], splits: np.ndarray) -> str:
    """Identifies the holdout rows, so promotion compares bundles on the same tickets."""
    keys = sorted({split_key(t) for t, s in zip(texts, splits) if s == "holdout"})
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- encoder
ENCODER_KINDS = ("minilm", "minilm-onnx", "hashing")


def resolve_encoder(encoder: Encoder | str | None) -> Encoder:
    """An encoder kind → the encoder, behind the on-disk cache keyed by text hash.

    ``minilm`` (torch) and ``minilm-onnx`` (the same model as int8 ONNX, 2-3x faster)
    are separate vector spaces with separate caches: the bundle records which one its
    heads were fitted on, and the service serves with that same one. ``hashing`` is
    the weightless test encoder. None means ``minilm``.
    """
    if encoder is None or encoder == "minilm":
        return CachedEncoder(MiniLMEncoder())
    if encoder == "minilm-onnx":  # new vectors: the newest serving graph (triage/onnx_encoder.py)
        from triage.onnx_encoder import LATEST_GRAPH

        return CachedEncoder(load_encoder({"kind": "minilm-onnx", "graph": LATEST_GRAPH}))
    if encoder == "hashing":
        return HashingEncoder()
    if isinstance(encoder, str):
        raise ValueError(f"encoder: expected one of {', '.join(ENCODER_KINDS)}, got {encoder!r}")
    return encoder


# ---------------------------------------------------------------------------- training
# The splits a chosen head is refitted on: never the holdout (see train_head, step 4).
REFIT_SPLITS = ("train", "calibration")


def train(
    data_path: str | Path,
    mapping_path: str | Path,
    out_dir: str | Path | None,
    *,
    encoder: Encoder | str | None = None,
    target_precision: float = TARGET_PRECISION,
    heads: Sequence[str] | None = None,
    candidates: Sequence[str] = KINDS,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    cv: int = 5,
    suggest_precision: float = SUGGEST_PRECISION,
    class_weight: str | None = "balanced",
    progress: bool = True,
    n_threads: int = 1,
    context_groups: Sequence[str] | None = None,
    signing_key: str | None = None,
    max_rows: int | None = None,
    screen: bool = True,
) -> TrainResult:
    """Train every head of the mapping and (when ``out_dir`` is given) write the bundle.

    Base models are fitted with ``class_weight="balanced"`` by default (macro-F1 counts a rare
    class like a big one: on the shared ``category`` labels this lifted holdout macro-F1 from
    0.41 to 0.56) while the calibrator on top stays unweighted, so probabilities still match
    real frequencies. BLAS threads are limited to ``n_threads``: on a shared 2-core machine an oversubscribed
    OpenBLAS made a small logistic regression 50× slower.

    Context features (:mod:`triage.features`) come from the mapping's ``metadata``; each
    group is tried per head and kept only where it raises out-of-fold macro-F1 on the train
    split (``context_groups`` limits the groups tried; ``()`` turns context off).

    ``screen``: on exports of ``SCREEN_MIN_ROWS`` rows or more, the vector candidates are
    first tried on a sample, and every row is embedded only if they can win there
    (training/screening.py); the report's ``vector_screen`` says what was decided.
    """
    mapping = load_mapping(mapping_path)
    wanted = list(heads or mapping.labels)
    unknown = set(wanted) - set(mapping.labels)
    if unknown:
        raise ValueError(f"heads: expected some of {sorted(mapping.labels)}, got {sorted(unknown)}")
    data, extra = _load_for_training(
        data_path, mapping, wanted, max_rows, candidates, fractions, seed, progress
    )
    if not len(data):  # a header alone, or every row dropped: nothing below could fit
        raise InputError(
            "no rows to train on",
            file=str(data_path),
            expected="at least one data row with a subject or body",
            got=f"{data.counts['rows_read']} rows read, {data.counts['dropped']} dropped",
        )
    _check_words(data, mapping, data_path)
    needs_vectors = any(k in ("embedding", "combined") for k in candidates)
    enc = resolve_encoder(encoder) if needs_vectors else None
    config = TrainConfig(
        str(data_path),
        str(mapping_path),
        target_precision,
        suggest_precision,
        tuple(fractions),
        seed,
        cv,
        tuple(candidates),
        tuple(wanted),
        class_weight=class_weight,
        encoder=enc.reference() if enc else {},
    )
    rule = ThresholdRule(target_precision=target_precision, suggest_precision=suggest_precision)
    splits = assign_splits(data.texts, fractions, seed)
    screened = _screen(data, wanted, splits, enc, config) if enc is not None and screen else None
    if screened is not None and not screened["keep"]:  # TF-IDF wins anyway: embed nothing more
        config.candidates = tuple(k for k in config.candidates if k not in ("embedding", "combined"))
        enc, config.encoder = None, {}
    vectors = enc.encode(data.texts, progress=progress) if enc else None  # torch: all threads
    X = Features(data.texts, vectors)
    context = ContextInputs.from_data(data, context_groups)
    with threadpool_limits(n_threads):
        fitted, head_reports, skipped = {}, {}, {}
        for name in _progress(wanted, progress, "heads"):
            groups, ablation = choose_context(X, data.labels[name], splits, context, config)
            Xh = X.with_context(context.strings(groups)) if groups else X
            full = {"incremental": extra[name]} if name in extra else None
            model, rep = train_head(name, Xh, data.labels[name], splits, config, rule, progress, extra=full)
            if model is not None:
                model.context_groups_ = tuple(groups)
                fitted_rows = _fitted_rows(data.labels[name], splits, rep)
                model.attach_examples(
                    None if X.vectors is None else X.vectors[fitted_rows],
                    [data.labels[name][i] for i in fitted_rows],
                    [_row_id(data, i) for i in fitted_rows],
                    [
                        (data.subjects[i] if data.subjects else None) or data.texts[i][:120]
                        for i in fitted_rows
                    ],
                )
                rep["context"] = {
                    "groups": list(groups),
                    "ablation": ablation,
                    "available": list(context.groups),
                }
                fitted[name], head_reports[name] = model, rep
            else:
                skipped[name] = {**rep["n"], "reason": rep["reason"]}
    report = build_report(data, mapping, config, splits, head_reports)
    report["skipped_heads"] = skipped  # too few labelled rows or classes: no model, said so
    report["vector_screen"] = screened
    # the confidence report's text-drift reference (token counts of the training rows)
    report["text_profile"] = text_profile(t for t, s in zip(data.texts, splits) if s == "train")
    manifest = build_manifest(data, mapping, config, rule, report, fitted)
    result = TrainResult(report, manifest, fitted, config)
    if out_dir is not None and fitted:
        result.bundle_path = write_bundle(
            out_dir,
            fitted,
            manifest,
            bundle_id=new_bundle_id(),
            extras=lambda tmp, bid: _write_report(result, tmp, bid),
            signing_key=signing_key,
        )  # HMAC over the checksums
        result.report_dir = result.bundle_path / "report"
    return result


_WORD = re.compile(r"\w\w+")
# Chinese, Japanese and Korean write no spaces: a sentence is one \w+ run, unique per ticket,
# though its characters repeat across tickets (the char n-gram candidate learns from them)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]{2,}")


def _words(text: str) -> set[str]:
    """The terms two rows can share: words, and character pairs of CJK runs."""
    words = set(_WORD.findall(text.lower()))
    for run in _CJK.findall(text):
        words.update(run[i : i + 2] for i in range(len(run) - 1))
    return words


def _check_words(data: Dataset, mapping: ColumnMapping, data_path: Path | str) -> None:
    """The text columns must share words between rows: TF-IDF keeps only words seen in two
    or more rows, and a body mapped to an id or code column (``1``, ``2``, ...) left none
    (scikit-learn's "After pruning, no terms remain" traceback). Stops at the first repeat."""
    seen: set[str] = set()
    for text in data.texts:
        words = _words(text)
        if words & seen:
            return
        seen |= words
    columns = " and ".join(repr(c) for c in (mapping.subject, mapping.body) if c)
    raise InputError(
        f"the text columns {columns} hold no word that two rows share: nothing to learn from "
        "(is the mapping's text naming an id or code column?)",
        file=str(data_path),
        expected="ticket subjects or descriptions",
        got=[t[:40] for t in data.texts[:3]],
    )


def _unfittable(
    y_train: np.ndarray, n: dict[str, int], config: TrainConfig, texts: Sequence[str] = ()
) -> str | None:
    """Why a head cannot be fitted on these labels (None: it can), in the data's terms;
    ``texts`` are the labelled rows' texts (the split keeps identical ones together)."""
    classes, counts = np.unique(y_train, return_counts=True)
    if not sum(n.values()):
        return "no labelled rows (the label column is blank, or every value was filtered out)"
    if len(classes) < 2:
        only = f" ({classes[0]!r})" if len(classes) else ""
        return f"one class only in the training split{only}: a classifier needs two or more"
    if n["calibration"] == 0 or n["holdout"] == 0:
        distinct = len({split_key(t) for t in texts})
        if distinct < sum(n.values()) // 2:  # 2,000 rows of 8 texts: the rows are not what is short
            return (
                f"too few distinct texts to split into train, calibration and holdout: the "
                f"{sum(n.values())} labelled rows hold {distinct} different texts, and the split "
                "keeps identical texts together (a ticket must not be learnt and graded both); "
                "is the text column a template, a category or a title only?"
            )
        return "too few labelled rows to split into train, calibration and holdout"
    if any(len(np.unique(y_train[fit])) < 2 for fit, _ in cross_folds(y_train, config.cv, config.seed)):
        top = classes[np.argmax(counts)]
        return (
            f"{counts.max()} of {counts.sum()} training rows are {top!r} and the other classes have "
            f"{counts.sum() - counts.max()}: too few for the {config.cv} cross-validation folds, "
            "each of which must see two classes (label more rows of the other classes, "
            "or merge them)"
        )
    return None


def _screen(
    data: Dataset, wanted: list[str], splits: np.ndarray, enc: Encoder, config: TrainConfig
) -> dict | None:
    """training/screening.py's verdict on embedding every row, or None on a small export."""
    from training import screening

    if len(data) < screening.SCREEN_MIN_ROWS:
        return None
    with threadpool_limits(1):
        return screening.screen_vectors(
            data.texts,
            {h: data.labels[h] for h in wanted},
            np.flatnonzero(splits == "train"),
            enc,
            rows=screening.SCREEN_ROWS,
            min_gain=TIE_MARGIN,  # a vector candidate must beat tfidf by this to be chosen
            kinds=config.candidates,
            seed=config.seed,
            svc_c=config.svc_c,
            lr_c=config.lr_c,
            class_weight=config.class_weight,
        )


def _load_for_training(
    data_path: str | Path,
    mapping: ColumnMapping,
    wanted: list[str],
    max_rows: int | None,
    candidates: Sequence[str],
    fractions: Sequence[float],
    seed: int,
    progress: bool,
) -> tuple[Dataset, dict]:
    """The rows the candidates are fitted on, and the full-data heads fitted beside them.

    Without ``max_rows`` the whole export is read into memory. With it the export is read
    as a stream (training/stream.py): a stratified sample for the candidates in ``KINDS``
    and, when ``incremental`` is a candidate and the file is larger than the sample, one
    :class:`~triage.incremental.IncrementalHead` per head fitted on the rest of the file
    (training/incremental.py). Memory is then bounded by ``max_rows``, not the file.
    """
    if not max_rows:
        check_fits(plain_export(Path(data_path)))  # an OOM kill minutes later said nothing
        return load_export(data_path, mapping), {}
    from training.stream import load_sampled

    data, info = load_sampled(data_path, mapping, max_rows, wanted[0], seed=seed)
    if "incremental" not in candidates or not data.counts.get("sampled"):
        return data, {}
    from training.incremental import fit_incremental

    extra = fit_incremental(
        data_path,
        mapping,
        wanted,
        info,
        data.source_rows,
        splits=lambda texts: assign_splits(texts, fractions, seed),
        seed=seed,
        progress=progress,
    )
    return data, extra


# A context group is kept for a head only if it raises out-of-fold macro-F1 by this much.
CONTEXT_MIN_GAIN = 0.005


@dataclass
class ContextInputs:
    """What the context builder needs from an export: its metadata and requester history."""

    metadata: dict
    n: int
    groups: tuple[str, ...]
    history: list | None = None

    @classmethod
    def from_data(cls, data: Dataset, wanted: Sequence[str] | None) -> "ContextInputs":
        groups = available_groups(data.metadata)
        if wanted is not None:
            groups = tuple(g for g in groups if g in set(wanted))
        history = None
        if "history" in groups:
            history = requester_history(data.metadata["requester"], data.metadata["created_at"], data.labels)
        return cls(data.metadata, len(data.texts), groups, history)

    def strings(self, groups: Sequence[str]) -> list[str]:
        return context_strings(self.metadata, self.n, self.history, groups)


def choose_context(
    X: Features, labels: Sequence[str | None], splits: np.ndarray, context: ContextInputs, config: TrainConfig
) -> tuple[list[str], dict]:
    """Per context group, the out-of-fold macro-F1 gain of the TF-IDF model on train rows.

    Returns the groups to use (each gained at least ``CONTEXT_MIN_GAIN`` alone) and the
    ablation table ``{"base": f1, group: {"macro_f1", "gain", "kept"}}``. Only train rows
    are used: the holdout stays unseen, the calibration split stays for thresholds.
    """
    if not context.groups:
        return [], {}
    rows = np.flatnonzero((splits == "train") & np.asarray([v is not None for v in labels]))
    y = np.asarray([str(labels[i]) for i in rows])
    if len(set(y)) < 2:
        return [], {}

    def oof_f1(Xc: Features) -> float:
        parts = fit_parts(
            Xc.take(rows),
            y,
            kinds=("tfidf",),
            svc_c=config.svc_c,
            class_weight=config.class_weight,
            cv=config.cv,
            random_state=config.seed,
        )
        k = len(parts.classes)
        return macro_f1_idx(np.searchsorted(parts.classes, y), parts.oof_svc.argmax(axis=1), k)

    base = oof_f1(X)
    table: dict[str, Any] = {"base": round(base, 4), "metric": "out-of-fold macro-F1, train split"}
    kept = []
    for g in context.groups:
        f1 = oof_f1(X.with_context(context.strings([g])))
        keep = f1 - base >= CONTEXT_MIN_GAIN
        table[g] = {"macro_f1": round(f1, 4), "gain": round(f1 - base, 4), "kept": keep}
        kept += [g] if keep else []
    return kept, table


# Selection tie rule: candidates within this much out-of-fold macro-F1 of the best are tied,
# and the simplest of them (earliest in ``KINDS``: reference, tfidf, embedding, combined) wins.
TIE_MARGIN = 0.005
# A candidate may replace the plain reference only if it beats it clearly: in at least this
# share of paired bootstrap resamples of the selection rows (a one-sided test at ~5 %).
# Macro-F1 over rare classes is noisy (one ticket of a 2-row class moves it by 0.05 on a
# 9-class head): a lead that could be luck is not worth giving up the simple model for.
CLEAR_WIN = 0.95
BOOTSTRAP_RESAMPLES = 400
# ... and it must not trail the reference on the calibration split: rows no fit has seen, scored
# by the model fitted on every train row, as the served one is. The train rows' labels come
# from the fold models, and a decision rule learnt from those scores need not carry over (the
# demo's impact head: reference_bias led by 0.03 out of fold, tied on calibration, lost on
# holdout). "Not trailing" = above the reference in at least half the paired resamples.
FRESH_WIN = 0.5


def train_head(
    name: str,
    X: Features,
    labels: Sequence[str | None],
    splits: np.ndarray,
    config: TrainConfig,
    rule: ThresholdRule,
    progress: bool,
    refit: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> tuple[TextHead | None, dict]:
    """Fit the candidates of one head, pick the winner, report on holdout, refit on train + calibration.

    1. every candidate (the plain reference among them) is fitted on train, cross-fitted, so
       each train row has an out-of-fold probability and reported label;
    2. the winner is the best macro-F1 of those labels pooled with the calibration split's,
       among the reference and the candidates that beat it in ``CLEAR_WIN`` of paired
       bootstrap resamples of those rows (ties → the simpler model); thresholds come from the
       same pooled rows, which no model saw when fitted;
    3. the holdout is scored once, before anything else is fitted: the honest figures;
    4. the winner's pipeline is refitted on every labelled row outside the holdout (train +
       calibration) with the thresholds kept: a head fitted on 70 % of an export loses to one
       fitted on more of it, and the thresholds are probability levels the refitted model keeps
       calibrated. The holdout is never fitted: it is the frozen ground on which the retrain
       gate grades champion and challenger (training/gate.py), and a bundle that had learnt it
       would win every comparison on it (a shuffled-label challenger tied the champion).
    """
    y = np.asarray([v if v is not None else "" for v in labels], dtype=object)
    has = np.asarray([v is not None for v in labels])
    idx = {s: np.flatnonzero(has & (splits == s)) for s in SPLITS}
    n = {s: int(len(i)) for s, i in idx.items()}
    why = _unfittable(y[idx["train"]], n, config, [X.texts[i] for i in np.flatnonzero(has)])
    if why:
        log.warning("head %s skipped: %s (%s)", name, why, n)
        return None, {"skipped": True, "n": n, "reason": why}
    params = dict(
        svc_c=config.svc_c,
        lr_c=config.lr_c,
        class_weight=config.class_weight,
        cv=config.cv,
        random_state=config.seed,
        progress=progress,
    )
    kinds = tuple(k for k in KINDS if k in config.candidates) or ("reference",)
    if "reference" not in kinds:  # the plain reference always competes: never below it
        kinds = ("reference",) + kinds
    if "reference_bias" not in kinds:  # its decision rule tuned for macro-F1: no extra fit
        kinds = ("reference", "reference_bias") + kinds[1:]
    cands = fit_candidates(X.take(idx["train"]), y[idx["train"]], kinds, **params)
    for kind, head in (extra or {}).items():  # fitted on the rest of the export: scored on train here
        cands[kind] = head.assemble(X.take(idx["train"]), y[idx["train"]])
    scores, probas, picks = {}, {}, {}
    y_sel = np.concatenate([y[idx["train"]], y[idx["calibration"]]])
    for kind, model in cands.items():
        classes = list(model.classes_)
        probas[kind], picks[kind] = {}, {}
        for s in ("calibration", "holdout"):
            probas[kind][s], picks[kind][s] = model.predict_labelled(X.take(idx[s]))
        scores[kind] = {
            s: head_metrics(y[idx[s]], probas[kind][s], classes, pred_idx=picks[kind][s])["macro_f1"]
            for s in ("calibration", "holdout")
        }
        # selection: out-of-fold train labels pooled with the calibration split, so a head
        # with 60 calibration rows (urgency among incidents) is not chosen on noise
        pooled = np.vstack([model.oof_proba_, probas[kind]["calibration"]])
        pooled_idx = np.concatenate([model.oof_labels_, picks[kind]["calibration"]])
        scores[kind]["selection"] = head_metrics(y_sel, pooled, classes, pred_idx=pooled_idx)["macro_f1"]
        scores[kind]["pooled"] = (pooled, pooled_idx)
    wins = paired_wins(
        *_class_index(cands["reference"].classes_, y_sel),
        {k: v["pooled"][1] for k, v in scores.items()},
        seed=config.seed,
    )
    fresh_wins = paired_wins(
        *_class_index(cands["reference"].classes_, y[idx["calibration"]]),
        {k: picks[k]["calibration"] for k in scores},
        seed=config.seed,
    )
    chosen = choose_candidate(
        {k: v["selection"] for k, v in scores.items()}, wins=wins, fresh_wins=fresh_wins
    )
    model, classes = cands[chosen], [str(c) for c in cands[chosen].classes_]
    pooled, pooled_idx = scores[chosen]["pooled"]
    thresholds = choose_thresholds(y_sel, pooled, classes, rule, pred_idx=pooled_idx)
    no_apply = small_calibration_reason(n["calibration"], rule.target_precision)
    if no_apply:
        for t in thresholds.values():
            t["apply"], t["n_applied"], t["precision_applied"] = None, 0, None
    # the plain reference's holdout labels: the ``reference`` candidate is that very model
    # (make_reference's features and seeded LinearSVC, fitted on the same train rows; its
    # label is the LinearSVC's arg-max), so it is read here rather than fitted a second time
    ref_pred = cands["reference"].classes_[picks["reference"]["holdout"]]
    report = {
        "chosen": chosen,
        "classes": classes,
        "n": n,
        "selection_rule": f"out-of-fold macro-F1 (train) pooled with calibration; a candidate "
        f"replaces the reference only if it beats it in >= {CLEAR_WIN:.0%} of "
        f"{BOOTSTRAP_RESAMPLES} paired bootstrap resamples and in >= {FRESH_WIN:.0%} of "
        f"those of the calibration split alone; within {TIE_MARGIN} of the best "
        f"of those, the simplest kind wins",
        "candidates": {k: v["selection"] for k, v in scores.items()},
        "candidates_beat_reference": wins,
        "candidates_beat_reference_calibration": fresh_wins,
        "candidates_calibration": {k: v["calibration"] for k, v in scores.items()},
        "candidates_holdout": {k: v["holdout"] for k, v in scores.items()},
        "calibrator": getattr(model, "calibration_", None),
        "metrics": head_metrics(
            y[idx["holdout"]],
            probas[chosen]["holdout"],
            classes,
            thresholds,
            pred_idx=picks[chosen]["holdout"],
        ),
        "calibration_metrics": head_metrics(
            y[idx["calibration"]],
            probas[chosen]["calibration"],
            classes,
            thresholds,
            pred_idx=picks[chosen]["calibration"],
        ),
        "reference": reference_metrics(y[idx["holdout"]], ref_pred),
        "holdout_vs_reference": holdout_paired(
            cands[chosen].classes_, y[idx["holdout"]], picks[chosen]["holdout"], ref_pred, config.seed
        ),
        "thresholds": thresholds,
        "apply_disabled": no_apply,
        # per-ticket top-1 label + probability: the confidence report's what-if for thresholds
        "holdout_scores": holdout_scores(y[idx["holdout"]], probas[chosen]["holdout"], classes),
    }
    if refit and chosen in (extra or {}):  # it learnt every non-holdout row outside the sample
        report["refit"] = {
            "rows": int(getattr(model, "rows_learnt_", 0)),
            "kind": chosen,
            "note": "fitted in one streamed pass over the export's non-holdout rows outside the "
            "sample; calibrated on the sample's train rows; not refitted",
        }
    elif refit:
        every = np.flatnonzero(has & np.isin(splits, REFIT_SPLITS))
        model = fit_candidates(X.take(every), y[every], (chosen,), **params)[chosen]
        report["refit"] = {
            "rows": int(len(every)),
            "splits": list(REFIT_SPLITS),
            "kind": chosen,
            "thresholds": "kept",
            "calibrator": getattr(model, "calibration_", None),
            "note": "metrics are the holdout figures measured before the refit; "
            "the bundle's model is refitted on train + calibration "
            "with the same pipeline and thresholds; the holdout stays "
            "unseen for the promotion gate",
        }
    else:
        report["refit"] = None
    return model, report


def choose_candidate(
    selection: Mapping[str, float],
    margin: float = TIE_MARGIN,
    wins: Mapping[str, float] | None = None,
    fresh_wins: Mapping[str, float] | None = None,
) -> str:
    """The simplest candidate within ``margin`` of the best selection macro-F1, among the
    reference and the candidates that beat it clearly (``wins[k] >= CLEAR_WIN``) and do not
    trail it on the calibration split (``fresh_wins[k] >= FRESH_WIN``); without ``wins`` /
    ``fresh_wins`` that test is skipped."""
    eligible = {
        k: f
        for k, f in selection.items()
        if k == "reference"
        or (
            (wins is None or wins.get(k, 0.0) >= CLEAR_WIN)
            and (fresh_wins is None or fresh_wins.get(k, 0.0) >= FRESH_WIN)
        )
    }
    best = max(eligible.values())
    order = [k for k in KINDS if k in eligible] + [k for k in eligible if k not in KINDS]
    return next(k for k in order if eligible[k] >= best - margin)


def holdout_paired(
    classes: np.ndarray, y: np.ndarray, picked: np.ndarray, ref_pred: Sequence[str], seed: int = 0
) -> dict:
    """How sure the holdout is about ours vs the reference: the share of paired bootstrap
    resamples in which ours scores below the reference on macro-F1. A head whose classes have
    1–2 holdout rows moves by 0.05 on one ticket; this says whether a gap is more than that."""
    y_idx, k = _class_index(classes, y)
    ref_idx, _ = _class_index(classes, np.asarray(ref_pred, dtype=object))
    picks = {"ours": np.asarray(picked), "plain": ref_idx}
    plain_above = paired_wins(y_idx, k, picks, reference="ours", seed=seed)["plain"]
    return {"share_of_resamples_ours_below": plain_above, "resamples": BOOTSTRAP_RESAMPLES}


def _class_index(classes: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels as column indices of ``classes``; a label the model never saw gets index k."""
    classes = np.asarray(classes).astype(str)
    pos = np.clip(np.searchsorted(classes, y.astype(str)), 0, len(classes) - 1)
    idx = np.where(classes[pos] == y.astype(str), pos, len(classes))
    return idx, len(classes) + 1


def paired_wins(
    y: np.ndarray,
    k: int,
    picks: Mapping[str, np.ndarray],
    reference: str = "reference",
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Per candidate, the share of paired bootstrap resamples of the rows in which its macro-F1
    is above the reference's (the same resampled rows for both: the paired difference is far
    less noisy than either score)."""
    if reference not in picks:
        return {}
    rng = np.random.default_rng(seed)
    others = [c for c in picks if c != reference]
    beats = dict.fromkeys(others, 0)
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        ref = macro_f1_idx(y[rows], picks[reference][rows], k)
        for c in others:
            beats[c] += macro_f1_idx(y[rows], picks[c][rows], k) > ref
    return {reference: 0.0, **{c: round(beats[c] / resamples, 4) for c in others}}


def small_calibration_reason(n_calibration: int, target: float) -> str | None:
    """Why a head must never auto-apply, or None: its calibration split (rows that no fit has
    seen) could not show the target precision even if every prediction on it were right."""
    need = min_rows_for(target)
    if n_calibration >= need:
        return None
    return (
        f"calibration split has {n_calibration} labelled rows; showing precision "
        f"{target:.2f} at 95 % confidence needs at least {need}, so this head only suggests"
    )


def _fitted_rows(labels: Sequence[str | None], splits: np.ndarray, rep: dict) -> np.ndarray:
    """The rows the bundle's model was fitted on: train + calibration after a refit, else train."""
    has = np.asarray([v is not None for v in labels])
    fitted = REFIT_SPLITS if rep.get("refit") else ("train",)
    return np.flatnonzero(has & np.isin(splits, fitted))


def _row_id(data: Dataset, i: int) -> str:
    """A training ticket's id as the export names it (the mapped ``id``), else its CSV row."""
    ids = data.metadata.get("id")
    if ids and ids[i] not in (None, ""):
        return str(ids[i])
    return f"row {data.source_rows[i]}"


def _progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


# ---------------------------------------------------------------------------- report + manifest
def build_report(
    data: Dataset,
    mapping: ColumnMapping,
    config: TrainConfig,
    splits: np.ndarray,
    head_reports: Mapping[str, dict],
) -> dict:
    split_counts = {s: int((splits == s).sum()) for s in SPLITS}
    dropped = dict(data.counts["dropped"])
    for head, rare in (data.counts.get("rare_classes") or {}).items():
        if rare.get("rows"):
            dropped[f"rare_class.{head}"] = rare["rows"]
    return {
        "bundle_id": None,
        "git_sha": git_sha(),
        "data": {
            "path": str(data.path),
            "sha256": data.sha256,
            "rows": data.counts["rows_read"],
            "rows_kept": data.counts["rows_kept"],
            "split": split_counts,
            "fractions": list(config.fractions),
            "seed": config.seed,
            "holdout_key": holdout_key(data.texts, splits),
            "labelled": data.counts["labelled"],
            "missing_label": data.counts["missing_label"],
            "filtered_out": data.counts["filtered_out"],
            "rare_classes": data.counts["rare_classes"],
            "mapping": mapping.source,
            "sampled": data.counts.get("sampled"),  # --max-rows: what was kept of what
            # how the export was read where it could mislead (dates, duplicate columns, classes)
            "warnings": data.counts.get("warnings", []),
        },
        "dropped_rows": dropped,
        "config": _jsonable(config.__dict__),
        "heads": {h: r for h, r in head_reports.items()},
        "priority": mapping.priority_config(),
    }


def build_manifest(
    data: Dataset,
    mapping: ColumnMapping,
    config: TrainConfig,
    rule: ThresholdRule,
    report: Mapping,
    fitted: Mapping[str, TextHead],
) -> dict:
    heads = {}
    for name, model in fitted.items():
        rep = report["heads"][name]
        m = rep["metrics"]
        heads[name] = {
            "kind": model.kind,
            "classes": rep["classes"],
            "thresholds": rep["thresholds"],
            "context": list(getattr(model, "context_groups_", ()) or ()),
            "apply_disabled": rep.get("apply_disabled"),
            "where": mapping.labels[name].where or None,
            "metrics": {
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
                "ece_15": m["ece_15"],
                "n": m["n"],
                "at_thresholds": {k: m["at_thresholds"].get(k) for k in ("applied", "suggested")},
                "reference_macro_f1": rep["reference"]["macro_f1"],
            },
        }
    return _jsonable(
        {
            "data": {
                k: report["data"][k]
                for k in ("path", "sha256", "rows", "rows_kept", "split", "holdout_key", "labelled")
            },
            "dropped_rows": report["dropped_rows"],
            "mapping": mapping.source,
            "encoder": config.encoder or None,
            "threshold_rule": rule.to_dict(),
            "priority": mapping.priority_config(),
            "heads": heads,
            "config": config.__dict__,
        }
    )


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
def evaluate_bundle(
    bundle_path: str | Path,
    data_path: str | Path,
    mapping_path: str | Path,
    *,
    split: str = "all",
    encoder: Encoder | str | None = None,
    fractions: Sequence[float] | None = None,
    seed: int | None = None,
) -> dict:
    """Score an existing bundle on an export (all rows, or only the rows its split puts in
    ``holdout``: the split is a function of the text, so it is the same tickets as in training).
    """
    from triage.predict import Triager

    ref = bundle_encoder_ref(bundle_path) or {}
    if encoder is not None:
        enc = resolve_encoder(encoder)
    elif ref.get("kind") == "minilm":
        enc = CachedEncoder(load_encoder(ref))  # reuse cached vectors
    else:
        enc = None
    tri = Triager.from_bundle(bundle_path, encoder=enc)
    mapping = load_mapping(mapping_path)
    data = load_export(data_path, mapping)
    trained_fractions, trained_seed = split_of(tri.manifest, DEFAULT_FRACTIONS)
    splits = assign_splits(data.texts, fractions or trained_fractions, trained_seed if seed is None else seed)
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
            proba, picked = predict_labelled(model, X.take(has))
            thresholds = thresholds_of(tri.manifest, name)
            heads[name] = {
                "chosen": tri.manifest["heads"][name].get("kind"),
                "metrics": head_metrics(
                    y, proba, [str(c) for c in model.classes_], thresholds, pred_idx=picked
                ),
                "thresholds": thresholds,
            }
    return _jsonable(
        {
            "bundle_id": tri.bundle_id,
            "split": split,
            "data": {
                "path": str(data.path),
                "sha256": data.sha256,
                "rows": data.counts["rows_read"],
                "rows_scored": int(keep.sum()),
            },
            "dropped_rows": data.counts["dropped"],
            "heads": heads,
        }
    )
