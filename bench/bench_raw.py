"""Benchmark: raw text as a first-class input, on the synthetic raw export (bench/raw_export.py).

Writes the export (German and English e-mails with greetings, signatures, disclaimers,
quoted replies, HTML, mojibake; ~50 skewed teams; four ITIL types), then

1. an ablation of normalisation and text features, per head: each variant is fitted on the
   train split and scored on the holdout (macro-F1 of the LinearSVC's arg-max), beside the
   plain reference (TF-IDF 1–2-grams + LinearSVC on the raw text) of the same run;
2. an ablation of each context group (channel, tier, service, requester history) on top of
   the normalised word + char model, scored the same way;
3. the whole pipeline through ``training.pipeline.train`` with the export's mapping, as
   ``triage train`` would run it: chosen model, holdout macro-F1 beside the reference, ECE,
   applied precision and coverage.

    nice .venv/bin/python bench/bench_raw.py --rows 6000          # ~minutes, no sentence model
    .venv/bin/python bench/bench_raw.py --rows 1500 --encoder hashing   # quick look

The export is synthetic (no real ticket behind any row); output goes to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def variants():
    """name → (text builder, vectorizer factory); text builders take (subject, message)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    from triage.classifiers import make_reference_vectorizer, make_vectorizer
    from triage.htmltext import as_text
    from triage.text import model_text

    raw = lambda s, b: f"{s} {b}"  # noqa: E731 - what a naive pipeline reads
    norm = lambda s, b: model_text(s, b)  # noqa: E731 - the project's one normalisation
    html_norm = lambda s, b: model_text(s, as_text(b))  # noqa: E731 - HTML to text first
    char_only = lambda n: FeatureUnion(  # noqa: E731
        [
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, dtype=np.float32
                ),
            )
        ]
    )
    return {
        "reference: word 1-2 on raw text": (raw, lambda n: make_reference_vectorizer()),
        "word 1-2, normalised": (norm, lambda n: make_reference_vectorizer()),
        "char_wb 2-5 on raw text": (raw, char_only),
        "word + char_wb on raw text": (raw, make_vectorizer),
        "word + char_wb, normalised (ours)": (norm, make_vectorizer),
        "word + char_wb, HTML→text + normalised": (html_norm, make_vectorizer),
    }


def holdout_f1(vectorizer, train_texts, y_train, test_texts, y_test, context=None) -> float:
    from sklearn.metrics import f1_score
    from sklearn.svm import LinearSVC

    from triage.classifiers import Features, make_context_vectorizer, text_matrix

    ctx_vec = None
    if context is not None:
        ctx_vec = make_context_vectorizer().fit(context[0])
    vectorizer.fit(train_texts)
    Xtr = text_matrix(vectorizer, ctx_vec, Features(train_texts, None, context and context[0]))
    Xte = text_matrix(vectorizer, ctx_vec, Features(test_texts, None, context and context[1]))
    svc = LinearSVC(C=0.5, class_weight="balanced", random_state=0).fit(Xtr, y_train)
    return float(f1_score(y_test, svc.predict(Xte), average="macro", zero_division=0))


def ablation(data_path: Path, mapping_path: Path) -> list[dict]:
    import pandas as pd

    from training.mapping import load_export, load_mapping
    from training.pipeline import ContextInputs, assign_splits

    mapping = load_mapping(mapping_path)
    data = load_export(data_path, mapping)
    df = pd.read_csv(data_path, dtype=str, keep_default_na=False)
    df = df.iloc[[r - 1 for r in data.source_rows]]  # the rows the export kept
    subjects, messages = df["Subject"].tolist(), df["Message"].tolist()
    splits = assign_splits(data.texts)
    context = ContextInputs.from_data(data, None)
    rows = []
    for head in mapping.labels:
        y = np.asarray([v if v is not None else "" for v in data.labels[head]], dtype=object)
        has = np.asarray([v is not None for v in data.labels[head]])
        tr, te = np.flatnonzero(has & (splits == "train")), np.flatnonzero(has & (splits == "holdout"))
        base = None
        for name, (build, make) in variants().items():
            texts = [build(s, b) for s, b in zip(subjects, messages)]
            f1 = holdout_f1(make(len(tr)), [texts[i] for i in tr], y[tr], [texts[i] for i in te], y[te])
            base = f1 if base is None else base
            rows.append({"head": head, "variant": name, "macro_f1": f1, "vs_reference": f1 - base})
        ours = variants()["word + char_wb, normalised (ours)"]
        texts = [ours[0](s, b) for s, b in zip(subjects, messages)]
        plain = holdout_f1(ours[1](len(tr)), [texts[i] for i in tr], y[tr], [texts[i] for i in te], y[te])
        for group in context.groups:
            ctx = context.strings([group])
            f1 = holdout_f1(
                ours[1](len(tr)),
                [texts[i] for i in tr],
                y[tr],
                [texts[i] for i in te],
                y[te],
                ([ctx[i] for i in tr], [ctx[i] for i in te]),
            )
            rows.append(
                {
                    "head": head,
                    "variant": f"ours + context: {group}",
                    "macro_f1": f1,
                    "vs_reference": f1 - base,
                    "vs_ours": f1 - plain,
                }
            )
    return rows


def pipeline_rows(data_path: Path, mapping_path: Path, encoder: str, folder: Path) -> list[dict]:
    from training.pipeline import train

    kinds = ("reference", "reference_bias", "tfidf")
    kinds += () if encoder == "none" else ("embedding", "combined")
    result = train(
        data_path,
        mapping_path,
        folder / "models",
        progress=False,
        candidates=kinds,
        encoder=None if encoder in ("minilm", "none") else encoder,
    )
    out = []
    for head, rep in result.report["heads"].items():
        m, at = rep["metrics"], rep["metrics"]["at_thresholds"]["applied"]
        zero = sum(1 for c in m["per_class"].values() if c["support"] and c["f1"] == 0)
        out.append(
            {
                "head": head,
                "chosen": rep["chosen"],
                "n_holdout": m["n"],
                "macro_f1": m["macro_f1"],
                "reference_f1": rep["reference"]["macro_f1"],
                "accuracy": m["accuracy"],
                "reference_acc": rep["reference"]["accuracy"],
                "ece_15": m["ece_15"],
                "applied_n": at["n"],
                "applied_coverage": at["coverage"],
                "applied_precision": at["precision"],
                "classes_f1_zero": zero,
                "context": rep["context"]["groups"],
                "refit_rows": rep["refit"]["rows"],
                "apply_disabled": rep.get("apply_disabled"),
                "p_ref_above": (rep.get("holdout_vs_reference") or {}).get("share_of_resamples_ours_below"),
                "candidates": {
                    k: (
                        rep["candidates"][k],
                        rep["candidates_holdout"][k],
                        (rep.get("candidates_beat_reference") or {}).get(k),
                    )
                    for k in rep["candidates"]
                },
            }
        )
    return out


def candidate_lines(pipe: list[dict]) -> list[str]:
    """Per head: each candidate's selection macro-F1 → holdout macro-F1, and how often it beat
    the reference in the paired resamples selection requires (p_ref_above: the holdout's own
    paired test, the share of resamples where the reference scores above ours)."""
    return [
        f"- {r['head']} candidates (selection → holdout): "
        + ", ".join(
            f"{k} {sel:.3f} → {held:.3f}"
            + (f" (beats reference in {w:.0%})" if w and k != "reference" else "")
            for k, (sel, held, w) in r["candidates"].items()
        )
        for r in pipe
    ]


def fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:+.3f}" if abs(x) < 1 and x < 0 else f"{x:.3f}"
    if isinstance(x, (list, tuple)):
        return ", ".join(map(str, x)) or "-"
    return "-" if x is None else str(x)


def table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument(
        "--encoder",
        choices=["none", "hashing", "minilm"],
        default="none",
        help="sentence encoder for the pipeline's embedding candidates (none: TF-IDF only)",
    )
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "triage-bench-raw")
    args = ap.parse_args(argv)
    import raw_export

    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data, mapping = raw_export.write(args.out, args.rows, args.seed)
    abl = ablation(data, mapping)
    pipe = pipeline_rows(data, mapping, args.encoder, args.out)
    text = [
        "## Normalisation, features and context (holdout macro-F1, LinearSVC on train split)",
        "",
        table(abl, ["head", "variant", "macro_f1", "vs_reference", "vs_ours"]),
        "",
        "## Pipeline (training.pipeline.train with the export's mapping)",
        "",
        table(
            pipe,
            [
                "head",
                "chosen",
                "n_holdout",
                "macro_f1",
                "reference_f1",
                "accuracy",
                "reference_acc",
                "p_ref_above",
                "ece_15",
                "applied_n",
                "applied_precision",
                "applied_coverage",
                "classes_f1_zero",
                "context",
                "refit_rows",
            ],
        ),
        "",
        *candidate_lines(pipe),
        "",
        f"rows {args.rows}, seed {args.seed}, encoder {args.encoder}, {time.time() - t0:.0f} s",
    ]
    (args.out / "bench_raw.md").write_text("\n".join(text) + "\n")
    (args.out / "bench_raw.json").write_text(
        json.dumps({"ablation": abl, "pipeline": pipe}, indent=2, default=str)
    )
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
