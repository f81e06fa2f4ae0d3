"""Label quality: find historical tickets whose label the model confidently disagrees with.

Why: a help-desk export is labelled by busy people; a few percent of tickets sit in the
wrong team or type. A classifier trained on them learns the mistakes, and the holdout
built from them grades the model against them. Confident learning (Northcutt, Jiang &
Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021) finds
them without a clean reference set:

1. out-of-fold predicted probabilities per head (stratified K-fold), so no row is scored
   by a model that saw its own label;
2. a per-class threshold ``t_j`` = the mean probability of class ``j`` over the rows
   *labelled* ``j`` (the class's average self-confidence);
3. a row labelled ``y`` goes to the confident-joint cell ``(y, j)`` where ``j`` is its most
   probable class among those with ``p_j >= t_j``; the calibrated off-diagonal counts
   estimate how many labels of each class are wrong;
4. that many rows of each class with the lowest probability of their given label are
   flagged (cleanlab's ``low_self_confidence``), suggested label = the most probable other
   class; the list is ranked by margin ``p_suggested - p_given``.

The model is a TF-IDF + logistic regression: fast (seconds on thousands of rows) and
calibrated enough for a ranking; the TF-IDF vocabulary is fitted on every text (no labels,
so no leakage), the classifier only on the other folds.

Output: a review list (CSV or JSON: row, text excerpt, given, suggested, confidence) and,
optionally, a copy of the export with the flagged labels blanked on the rows *outside*
the holdout, so a retrain without them is graded on the very same holdout tickets.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from triage.spreadsheet import write_csv

from .mapping import Dataset, load_export, load_mapping, read_export

log = logging.getLogger(__name__)

EXCERPT_CHARS = 160
METHODS = ("self_confidence", "confident_joint", "both")


@dataclass
class Flag:
    """One likely label error, as a reviewer sees it."""

    head: str
    row: int  # 1-based record number in the export (header excluded), as InputError
    index: int  # position in the Dataset (rows dropped for empty text are skipped)
    text: str  # excerpt
    given: str
    suggested: str
    confidence: float  # out-of-fold probability of the suggested label
    given_probability: float
    margin: float  # confidence - given_probability: the ranking key


# ---------------------------------------------------------------------------- probabilities
def vectorise(texts: Sequence[str]):
    """TF-IDF word uni/bi-grams, fitted on every text: unsupervised, so it leaks no label."""
    vec = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True, dtype=np.float32
    )
    try:
        return vec.fit_transform(texts)
    except ValueError:  # tiny corpora: every term appears once
        return TfidfVectorizer(sublinear_tf=True, dtype=np.float32).fit_transform(texts)


def out_of_fold_proba(
    X, labels: Sequence[str], *, n_splits: int = 5, seed: int = 0, c: float = 10.0
) -> tuple[np.ndarray, list[str]]:
    """(n, k) probabilities where row i comes from the model fitted without i's fold.

    Classes rarer than ``n_splits`` still get folds (StratifiedKFold spreads what it can);
    a fold model that never saw a class gives it probability 0.
    """
    y = np.asarray([str(v) for v in labels], dtype=object)
    classes = sorted(set(y))
    col = {c_: i for i, c_ in enumerate(classes)}
    proba = np.zeros((len(y), len(classes)))
    counts = {c_: int((y == c_).sum()) for c_ in classes}
    splits = max(2, min(n_splits, max(counts.values())))
    folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    import warnings

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only k members"
        for train_idx, test_idx in folds.split(np.zeros(len(y)), y):
            if len(set(y[train_idx])) < 2:
                proba[np.ix_(test_idx, [col[y[train_idx][0]]])] = 1.0
                continue
            model = LogisticRegression(C=c, max_iter=1000)
            model.fit(X[train_idx], y[train_idx])
            cols = [col[str(k)] for k in model.classes_]
            proba[np.ix_(test_idx, cols)] = model.predict_proba(X[test_idx])
    return proba, classes


# ---------------------------------------------------------------------------- confident learning
def class_thresholds(proba: np.ndarray, given: np.ndarray) -> np.ndarray:
    """t_j = mean p_j over the rows labelled j (the class's average self-confidence)."""
    t = np.ones(proba.shape[1])
    for j in range(proba.shape[1]):
        mask = given == j
        if mask.any():
            t[j] = proba[mask, j].mean()
    return t


def confident_joint(proba: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has a confident class, that class, per-class thresholds) per row."""
    t = class_thresholds(proba, given)
    above = proba >= t[None, :] - 1e-12
    confident = np.where(above, proba, -1.0).argmax(axis=1)
    return above.any(axis=1), confident, t


def estimated_issues_per_class(
    given: np.ndarray, confident: np.ndarray, has: np.ndarray, k: int
) -> np.ndarray:
    """Off-diagonal mass of the calibrated confident joint, per given class (Northcutt §3.1):
    the joint's rows are rescaled to the class counts, since rows with no confident class
    are left out of it."""
    joint = np.zeros((k, k))
    np.add.at(joint, (given[has], confident[has]), 1)
    counts = np.bincount(given, minlength=k).astype(float)
    calibrated = joint / np.maximum(joint.sum(axis=1), 1)[:, None] * counts[:, None]
    return np.rint(calibrated.sum(axis=1) - np.diag(calibrated)).astype(int)


def find_label_issues(
    proba: np.ndarray, given: np.ndarray, *, method: str = "self_confidence"
) -> tuple[np.ndarray, np.ndarray]:
    """(flagged mask, suggested class index) per row.

    ``self_confidence`` (default): the confident joint estimates how many labels of each
    class are wrong; within each class, that many rows with the lowest probability of their
    given label are flagged (cleanlab's ``low_self_confidence`` ranking). On the shared
    tickets it beat flagging the off-diagonal joint itself (see bench/bench_label_quality.py).
    ``confident_joint``: the row's confident class (most probable among ``p_j >= t_j``) is not
    its given class. ``both`` also requires the given class below its own threshold.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    has, confident, t = confident_joint(proba, given)
    rows = np.arange(len(given))
    others = proba.copy()
    others[rows, given] = -1.0
    suggested = others.argmax(axis=1)
    if method == "self_confidence":
        flagged = np.zeros(len(given), bool)
        n_issues = estimated_issues_per_class(given, confident, has, proba.shape[1])
        self_conf = proba[rows, given]
        for j, n in enumerate(n_issues):
            members = np.flatnonzero(given == j)
            if n > 0 and len(members):
                flagged[members[np.argsort(self_conf[members], kind="stable")[:n]]] = True
        return flagged, suggested
    flagged = has & (confident != given)
    if method == "both":
        flagged &= proba[rows, given] < t[given]
    return flagged, np.where(flagged & has, confident, suggested)


# ---------------------------------------------------------------------------- per dataset
def flag_head(
    data: Dataset, head: str, X=None, *, n_splits: int = 5, seed: int = 0, method: str = "self_confidence"
) -> tuple[list[Flag], dict]:
    """Flags of one head (most suspicious first) and a summary of the run."""
    labels = data.labels[head]
    idx = np.asarray([i for i, v in enumerate(labels) if v is not None])
    if len(idx) == 0 or len({labels[i] for i in idx}) < 2:
        return [], {"head": head, "rows": int(len(idx)), "flagged": 0, "skipped": True}
    X = vectorise(data.texts) if X is None else X
    proba, classes = out_of_fold_proba(X[idx], [labels[i] for i in idx], n_splits=n_splits, seed=seed)
    col = {c: j for j, c in enumerate(classes)}
    given = np.asarray([col[str(labels[i])] for i in idx])
    flagged, suggested = find_label_issues(proba, given, method=method)
    rows = np.arange(len(idx))
    p_given = proba[rows, given]
    p_sugg = proba[rows, suggested]
    flags = [
        Flag(
            head,
            int(data.source_rows[idx[r]]),
            int(idx[r]),
            excerpt(data.texts[idx[r]]),
            classes[given[r]],
            classes[suggested[r]],
            round(float(p_sugg[r]), 4),
            round(float(p_given[r]), 4),
            round(float(p_sugg[r] - p_given[r]), 4),
        )
        for r in np.flatnonzero(flagged)
    ]
    flags.sort(key=lambda f: -f.margin)
    summary = {
        "head": head,
        "rows": int(len(idx)),
        "classes": len(classes),
        "flagged": len(flags),
        "share": round(len(flags) / len(idx), 4),
        "oof_accuracy": round(float((proba.argmax(1) == given).mean()), 4),
        "method": method,
        "folds": n_splits,
    }
    return flags, summary


def flag_dataset(
    data: Dataset,
    heads: Sequence[str] | None = None,
    *,
    n_splits: int = 5,
    seed: int = 0,
    method: str = "self_confidence",
) -> tuple[list[Flag], dict]:
    """Flags of every head (one shared TF-IDF matrix) and a summary per head."""
    X = vectorise(data.texts)
    flags, summary = [], {}
    for head in heads or list(data.labels):
        f, s = flag_head(data, head, X, n_splits=n_splits, seed=seed, method=method)
        flags += f
        summary[head] = s
        log.info("label quality %s: %d of %d rows flagged", head, s.get("flagged", 0), s["rows"])
    return flags, summary


# A scored label must be at least this probable to flag the given one (see flags_from_scores).
SCORE_MIN_PROBABILITY = 0.9


def flags_from_scores(
    data: Dataset,
    scores_dir: str | Path,
    heads: Sequence[str] | None = None,
    *,
    min_probability: float = SCORE_MIN_PROBABILITY,
) -> tuple[list[Flag], dict]:
    """Flags from a ``triage score`` output (Parquet, any engine) instead of out-of-fold fits.

    At millions of tickets the K-fold fits above are the cost; a bundle scored over the
    history on Ray (training/batch.py) has already said, per row, its label and that
    label's probability. A row is flagged when the bundle's label differs from the given
    one with probability ≥ ``min_probability``; the list is ranked by that probability
    (the given label's own probability is not in the output: ``given_probability`` is 0 and
    ``margin`` the scored probability). The bundle was fitted on most of these rows, which
    makes it slower to disagree than out-of-fold models: fewer flags, each more certain. It
    is the check to run on tickets the bundle never saw (newer history, backfills).
    """
    from .batch import read_scores

    frame = read_scores(scores_dir)
    position = {int(r): i for i, r in enumerate(data.source_rows)}
    flags, summary = [], {}
    for head in heads or list(data.labels):
        if f"{head}_label" not in frame.columns:
            summary[head] = {"head": head, "rows": 0, "flagged": 0, "skipped": True, "source": "scores"}
            continue
        given = data.labels[head]
        checked = 0
        for row, label, p in zip(frame["row"], frame[f"{head}_label"], frame[f"{head}_probability"]):
            i = position.get(int(row))
            if i is None or given[i] is None or label is None or not np.isfinite(p):
                continue
            checked += 1
            if str(label) != str(given[i]) and p >= min_probability:
                flags.append(
                    Flag(
                        head,
                        int(row),
                        i,
                        excerpt(data.texts[i]),
                        str(given[i]),
                        str(label),
                        round(float(p), 4),
                        0.0,
                        round(float(p), 4),
                    )
                )
        n = sum(f.head == head for f in flags)
        summary[head] = {
            "head": head,
            "rows": checked,
            "flagged": n,
            "share": round(n / checked, 4) if checked else 0.0,
            "method": f"scored label != given, probability >= {min_probability}",
            "source": str(scores_dir),
        }
    flags.sort(key=lambda f: -f.margin)
    return flags, summary


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------- files
def write_review_list(flags: Sequence[Flag], path: str | Path) -> Path:
    """CSV (``.csv``) or JSON (anything else): one line per flag, most suspicious first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [asdict(f) for f in flags]
    if path.suffix.lower() == ".csv":
        write_csv(path, rows, list(Flag.__dataclass_fields__))  # ticket text: no formulas
    else:
        path.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def without_flagged(
    data_path: str | Path,
    mapping_path: str | Path,
    flags: Sequence[Flag],
    out_path: str | Path,
    *,
    keep_rows: Sequence[int] = (),
) -> dict:
    """Write a copy of the export with each flagged label blanked (the row stays for the
    other heads); rows in ``keep_rows`` (1-based, e.g. the holdout) keep their labels so a
    retrain is graded on the same tickets. Returns counts."""
    mapping = load_mapping(mapping_path)
    df = read_export(data_path)
    keep = set(int(r) for r in keep_rows)
    blanked, kept = 0, 0
    for f in flags:
        if f.row in keep:
            kept += 1
            continue
        df.at[f.row - 1, mapping.labels[f.head].column] = None  # the index: 0-based record numbers
        blanked += 1
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix.lower() == ".csv":
        df.to_csv(out_path, index=False)
    else:
        df.to_json(out_path, orient="records", lines=True, force_ascii=False)
    return {"blanked": blanked, "kept_in_holdout": kept, "path": str(out_path)}


def holdout_rows(data: Dataset, fractions=None, seed: int = 0) -> list[int]:
    """1-based export rows the training pipeline's split puts in ``holdout``."""
    from .pipeline import DEFAULT_FRACTIONS, assign_splits

    splits = assign_splits(data.texts, fractions or DEFAULT_FRACTIONS, seed)
    return [int(r) for r, s in zip(data.source_rows, splits) if s == "holdout"]


def run(
    data_path: str | Path,
    mapping_path: str | Path,
    *,
    heads: Sequence[str] | None = None,
    out: str | Path | None = None,
    n_splits: int = 5,
    seed: int = 0,
    method: str = "self_confidence",
    scores: str | Path | None = None,
    min_probability: float = SCORE_MIN_PROBABILITY,
) -> tuple[list[Flag], dict]:
    """Load an export through its mapping, flag every head, write the review list.

    With ``scores`` (a ``triage score`` output folder) the flags come from the scored
    labels (:func:`flags_from_scores`) rather than from out-of-fold fits."""
    data = load_export(data_path, load_mapping(mapping_path))
    if scores is not None:
        flags, summary = flags_from_scores(data, scores, heads, min_probability=min_probability)
    else:
        flags, summary = flag_dataset(data, heads, n_splits=n_splits, seed=seed, method=method)
    if out is not None:
        write_review_list(flags, out)
    return flags, summary


__all__ = [
    "Flag",
    "out_of_fold_proba",
    "class_thresholds",
    "find_label_issues",
    "flag_head",
    "compare_without",
    "flag_dataset",
    "flags_from_scores",
    "write_review_list",
    "without_flagged",
    "holdout_rows",
    "run",
]


def compare_without(
    data_path: str | Path,
    mapping_path: str | Path,
    flags: Sequence[Flag],
    work_dir: str | Path,
    **train_kwargs,
) -> dict:
    """Train with and without the flagged labels (holdout rows untouched) and report how
    each head's holdout figures move. Both runs see the same holdout tickets with the same
    labels, so the difference is the effect of the flagged training labels alone."""
    from .pipeline import train

    work = Path(work_dir)
    data = load_export(data_path, load_mapping(mapping_path))
    cfg = {k: train_kwargs[k] for k in ("fractions", "seed") if k in train_kwargs}
    keep = holdout_rows(data, cfg.get("fractions"), cfg.get("seed", 0))
    clean = work / (
        "without-flagged" + (Path(data_path).suffix if Path(data_path).suffix in (".csv",) else ".jsonl")
    )
    counts = without_flagged(data_path, mapping_path, flags, clean, keep_rows=keep)
    runs = {
        name: train(path, mapping_path, None, progress=False, **train_kwargs).report
        for name, path in (("with", data_path), ("without", clean))
    }
    heads = {}
    for head in runs["with"]["heads"]:
        a = (runs["with"]["heads"].get(head) or {}).get("metrics") or {}
        b = (runs["without"]["heads"].get(head) or {}).get("metrics") or {}
        heads[head] = {
            k: {
                "with": a.get(k),
                "without": b.get(k),
                "delta": None if a.get(k) is None or b.get(k) is None else round(b[k] - a[k], 4),
            }
            for k in ("macro_f1", "accuracy", "ece_15")
        }
    return {
        "blanked": counts["blanked"],
        "kept_in_holdout": counts["kept_in_holdout"],
        "holdout_key": {n: r["data"].get("holdout_key") for n, r in runs.items()},
        "heads": heads,
    }
