"""Tables for the notebooks: a data scientist's view of an export, a run and its errors.

The notebooks in ``notebooks/`` only call these functions and show what they return, so
no feature or metric code lives in a notebook (where it would drift from training) and the
test suite, which executes the notebooks, exercises exactly this code.

Inputs come from the environment (the notebook passes ``os.environ``) so the same notebook
runs on the demo corpus, the shared data or a customer export without editing it:

``TRIAGE_NOTEBOOK_DATA`` / ``TRIAGE_NOTEBOOK_MAPPING``
    export and column mapping (default: ``data/demo/tickets.csv`` + ``data/demo/mapping.yaml``)
``TRIAGE_NOTEBOOK_ENCODER``
    ``minilm`` (default), ``hashing`` (fast, no weights: the tests) or ``none`` (TF-IDF only)
``TRIAGE_NOTEBOOK_HEADS``
    comma-separated heads to train (default: every head of the mapping)
``TRIAGE_NOTEBOOK_BUNDLE``
    an existing bundle for error analysis (default: train one into a temporary folder)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from triage.bundle import split_of, thresholds_of
from triage.classifiers import predict_labelled

from .mapping import Dataset, load_export, load_mapping


@dataclass
class NotebookInputs:
    data: Path
    mapping: Path
    encoder: str
    heads: list[str] | None
    bundle: Path | None

    @property
    def candidates(self) -> tuple[str, ...]:
        return ("tfidf",) if self.encoder == "none" else ("tfidf", "embedding", "combined")

    def train_kwargs(self) -> dict:
        """Arguments for :func:`training.pipeline.train` (encoder ``minilm`` = the default)."""
        return {
            "encoder": "hashing" if self.encoder == "hashing" else None,
            "candidates": self.candidates,
            "heads": self.heads,
            "progress": False,
        }


def demo_folder(start: Path) -> Path:
    """``data/demo`` of the project holding ``start`` (the notebook's folder or a checkout)."""
    for folder in (start, *start.parents):
        if (folder / "data" / "demo" / "mapping.yaml").exists():
            return folder / "data" / "demo"
    return start / "data" / "demo"


def notebook_inputs(environ: Mapping[str, str], start: Path | None = None) -> NotebookInputs:
    """What the notebooks read, from ``TRIAGE_NOTEBOOK_*`` in ``environ`` (see the module
    docstring); the notebook passes ``os.environ`` and the demo corpus is searched from
    ``start`` (default: the working directory) upwards, never from this package's location."""
    env = environ.get
    demo = demo_folder(Path(start) if start else Path.cwd())
    data = Path(env("TRIAGE_NOTEBOOK_DATA") or demo / "tickets.csv")
    mapping = Path(env("TRIAGE_NOTEBOOK_MAPPING") or demo / "mapping.yaml")
    for what, path in (("data", data), ("mapping", mapping)):
        if not path.exists():
            raise FileNotFoundError(
                f"{what} file {path} not found: set TRIAGE_NOTEBOOK_"
                f"{what.upper()} to an export / column mapping"
            )
    encoder = (env("TRIAGE_NOTEBOOK_ENCODER") or "minilm").lower()
    if encoder not in ("minilm", "hashing", "none"):
        raise ValueError(f"TRIAGE_NOTEBOOK_ENCODER: expected minilm, hashing or none, got {encoder!r}")
    heads = [h.strip() for h in (env("TRIAGE_NOTEBOOK_HEADS") or "").split(",") if h.strip()]
    bundle = Path(env("TRIAGE_NOTEBOOK_BUNDLE")) if env("TRIAGE_NOTEBOOK_BUNDLE") else None
    return NotebookInputs(data, mapping, encoder, heads or None, bundle)


def load_dataset(inputs: NotebookInputs) -> Dataset:
    return load_export(inputs.data, load_mapping(inputs.mapping))


# ---- 01: data overview ------------------------------------------------------------------------


def row_counts(ds: Dataset) -> pd.DataFrame:
    """Rows read, kept and dropped (by reason): nothing disappears without a count."""
    c = ds.counts
    rows = [("rows read", c.get("rows_read")), ("rows kept", c.get("rows_kept"))]
    rows += [(f"dropped: {k}", v) for k, v in (c.get("dropped") or {}).items()]
    return pd.DataFrame(rows, columns=["what", "rows"]).set_index("what")


def label_table(ds: Dataset) -> pd.DataFrame:
    """Per head: labelled rows, missing labels, classes, largest and smallest class share."""
    out = []
    for head, labels in ds.labels.items():
        s = pd.Series([v for v in labels if v is not None], dtype=object)
        vc = s.value_counts()
        out.append(
            {
                "head": head,
                "labelled": int(len(s)),
                "missing": len(labels) - len(s),
                "classes": int(len(vc)),
                "largest class share": float(vc.iloc[0] / len(s)) if len(s) else np.nan,
                "smallest class rows": int(vc.iloc[-1]) if len(vc) else 0,
            }
        )
    return pd.DataFrame(out).set_index("head")


def class_counts(ds: Dataset, head: str) -> pd.Series:
    return (
        pd.Series([v for v in ds.labels[head] if v is not None], dtype=object)
        .value_counts()
        .rename(f"{head} rows")
    )


def text_lengths(ds: Dataset) -> pd.Series:
    """Words per model text (after normalisation: what the classifiers actually read)."""
    return pd.Series([len(t.split()) for t in ds.texts], name="words")


def split_table(ds: Dataset, fractions=None, seed: int = 0) -> pd.DataFrame:
    """Rows per split and head, with the pipeline's own (text-hash) split."""
    from .pipeline import DEFAULT_FRACTIONS, SPLITS, assign_splits

    splits = assign_splits(ds.texts, fractions or DEFAULT_FRACTIONS, seed)
    table = {
        head: {s: int(sum(1 for v, sp in zip(labels, splits) if v is not None and sp == s)) for s in SPLITS}
        for head, labels in ds.labels.items()
    }
    return pd.DataFrame(table).T


# ---- 02: model comparison ---------------------------------------------------------------------


def comparison_table(report: Mapping) -> pd.DataFrame:
    """One row per head × candidate (calibration and holdout macro-F1) plus the reference."""
    rows = []
    for head, h in (report.get("heads") or {}).items():
        held = h.get("candidates_holdout") or {}
        for name, f1 in (h.get("candidates") or {}).items():
            rows.append(
                {
                    "head": head,
                    "model": name,
                    "calibration macro-F1": f1,
                    "holdout macro-F1": held.get(name),
                    "chosen": name == h.get("chosen"),
                }
            )
        ref = h.get("reference") or {}
        rows.append(
            {
                "head": head,
                "model": ref.get("name", "tfidf+linearsvc") + " (reference)",
                "calibration macro-F1": None,
                "holdout macro-F1": ref.get("macro_f1"),
                "chosen": False,
            }
        )
    return pd.DataFrame(rows).set_index(["head", "model"])


def head_summary(report: Mapping) -> pd.DataFrame:
    """Per head on the holdout: accuracy, macro-F1, ECE, and coverage/precision when applied."""
    rows = []
    for head, h in (report.get("heads") or {}).items():
        m = h.get("metrics") or {}
        at = m.get("at_thresholds") or {}
        rows.append(
            {
                "head": head,
                "chosen": h.get("chosen"),
                "n": m.get("n"),
                "accuracy": m.get("accuracy"),
                "macro-F1": m.get("macro_f1"),
                "reference macro-F1": (h.get("reference") or {}).get("macro_f1"),
                "ECE": m.get("ece_15"),
                "applied coverage": (at.get("applied") or {}).get("coverage"),
                "applied precision": (at.get("applied") or {}).get("precision"),
                "suggested coverage": (at.get("suggested") or {}).get("coverage"),
            }
        )
    return pd.DataFrame(rows).set_index("head")


def per_class_table(report: Mapping, head: str) -> pd.DataFrame:
    h = report["heads"][head]
    thr = h.get("thresholds") or {}
    df = pd.DataFrame(h["metrics"]["per_class"]).T
    df["apply ≥"] = [(thr.get(c) or {}).get("apply") for c in df.index]
    df["suggest ≥"] = [(thr.get(c) or {}).get("suggest") for c in df.index]
    return df.sort_values("f1")


# ---- 03: error analysis -----------------------------------------------------------------------


def bundle_for_analysis(inputs: NotebookInputs) -> Path:
    """The bundle named by ``TRIAGE_NOTEBOOK_BUNDLE``, else a fresh one in a temporary folder."""
    if inputs.bundle is not None:
        return inputs.bundle
    from .pipeline import train

    out = Path(tempfile.mkdtemp(prefix="triage-notebook-"))
    return train(inputs.data, inputs.mapping, out, **inputs.train_kwargs()).bundle_path


def holdout_predictions(bundle: Path, inputs: NotebookInputs, head: str) -> pd.DataFrame:
    """Every holdout row of ``head``: text, true label, prediction, probability, decision,
    second guess and the terms behind the prediction (as served: the Triager's own models)."""
    from triage.predict import Triager
    from triage.thresholds import decide

    from .pipeline import DEFAULT_FRACTIONS, assign_splits

    tri = Triager.from_bundle(bundle)
    ds = load_dataset(inputs)
    splits = assign_splits(ds.texts, *split_of(tri.manifest, DEFAULT_FRACTIONS))
    rows = [i for i, (v, s) in enumerate(zip(ds.labels[head], splits)) if v is not None and s == "holdout"]
    model = tri.models[head]
    X = tri.features_for_texts([ds.texts[i] for i in rows])
    proba, picked = predict_labelled(model, X)
    classes = [str(c) for c in model.classes_]
    pred = [classes[j] for j in picked]
    order = np.argsort(-proba, axis=1)
    order = np.asarray([[j] + [c for c in row if c != j] for j, row in zip(picked, order)])
    thresholds = thresholds_of(tri.manifest, head)
    explain = model.explain(X, pred, k=5) if hasattr(model, "explain") else [[]] * len(rows)
    return pd.DataFrame(
        {
            "row": [ds.source_rows[i] for i in rows],
            "text": [ds.texts[i] for i in rows],
            "true": [ds.labels[head][i] for i in rows],
            "predicted": pred,
            "probability": proba[np.arange(len(rows)), order[:, 0]],
            "second": [classes[j] for j in order[:, 1]] if proba.shape[1] > 1 else None,
            "decision": [
                decide(p, float(q), thresholds).value
                for p, q in zip(pred, proba[np.arange(len(rows)), order[:, 0]])
            ],
            "terms": [", ".join(t["term"] for t in e) for e in explain],
        }
    ).assign(correct=lambda d: d["true"] == d["predicted"])


def confusion_pairs(frame: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The most frequent (true → predicted) mistakes: where two classes blur together."""
    err = frame[~frame["correct"]]
    return (
        err.groupby(["true", "predicted"])
        .size()
        .rename("errors")
        .sort_values(ascending=False)
        .head(top)
        .reset_index()
    )


def confident_errors(frame: pd.DataFrame, n: int = 10, *, width: int = 140) -> pd.DataFrame:
    """Wrong and sure of it: label noise, or a class the model has learnt wrongly."""
    err = frame[~frame["correct"]].sort_values("probability", ascending=False).head(n)
    return err.assign(text=err["text"].str.slice(0, width))[
        ["row", "true", "predicted", "probability", "decision", "terms", "text"]
    ]


def decision_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Tickets and accuracy per decision: what auto-apply would have got wrong."""
    return frame.groupby("decision").agg(tickets=("correct", "size"), accuracy=("correct", "mean"))


def class_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Per true class: holdout rows, recall, and what it is most often mistaken for."""

    def top_wrong(g: pd.DataFrame) -> Any:
        wrong = g.loc[~g["correct"], "predicted"]
        return wrong.value_counts().index[0] if len(wrong) else None

    grouped = frame.groupby("true")
    return pd.DataFrame(
        {
            "rows": grouped.size(),
            "recall": grouped["correct"].mean(),
            "most confused with": grouped.apply(top_wrong, include_groups=False),
        }
    ).sort_values("recall")
