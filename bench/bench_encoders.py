"""Does the int8 ONNX MiniLM cost accuracy? Macro-F1 of each encoder on both shared exports.

For each shared export (read through bench/mappings/*.yaml) and each head, the same
``--sample`` tickets are embedded by ``minilm`` (torch fp32), by ``minilm-onnx`` at
serving graph version 1 (int8 ONNX Runtime, what bundles before round 5 hold) and at
version 2 (no SkipLayerNormalization fusion: triage/onnx_encoder.py ``GRAPHS``), and a
logistic regression on the vectors is scored by stratified k-fold macro-F1 (the same
folds for every encoder). The table prints each encoder's mean ± standard deviation
over the folds, the paired differences and their spread (the noise), and the
embedding rate of each encoder in the same run.
Vectors are cached by text hash (``TRIAGE_CACHE_DIR``), so a rerun only fits.

    nice .venv/bin/python bench/bench_encoders.py                 # 4,000 tickets per export
    nice .venv/bin/python bench/bench_encoders.py --sample 1000   # a quicker look

Nothing from the shared data is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from shared_data import SHARED  # noqa: E402 - bench/ is on sys.path when run as a script

RUNS = [
    (
        "it_tickets",
        SHARED / "it_tickets" / "all_tickets_processed_improved_v3.csv",
        ROOT / "bench" / "mappings" / "it_tickets.yaml",
    ),
    ("endava", SHARED / "endava" / "all_tickets_subset.csv", ROOT / "bench" / "mappings" / "endava.yaml"),
]
ENCODERS = ("minilm", "minilm-onnx", "minilm-onnx-g2")
# (label of the column, encoder minus reference) paired differences printed
PAIRS = (("onnx g1 - torch", "minilm-onnx", "minilm"), ("onnx g2 - onnx g1", "minilm-onnx-g2", "minilm-onnx"))


def encoder_for(kind: str):
    """The named encoder behind the embedding cache; the ONNX ones at an explicit graph version."""
    from training.pipeline import resolve_encoder
    from triage.encoder import CachedEncoder, load_encoder

    if kind.startswith("minilm-onnx"):
        graph = 2 if kind.endswith("-g2") else 1
        return CachedEncoder(load_encoder({"kind": "minilm-onnx", "graph": graph}))
    return resolve_encoder(kind)


def sample_rows(texts: list[str], labels: dict, n: int, seed: int = 0) -> np.ndarray:
    """``n`` row indices drawn at random (fixed seed), the same for every encoder."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(len(texts))[:n])


def fold_scores(X: np.ndarray, y: np.ndarray, folds) -> list[float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    out = []
    for train, test in folds:
        model = LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced")
        model.fit(X[train], y[train])
        out.append(f1_score(y[test], model.predict(X[test]), average="macro"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sample", type=int, default=4000, help="tickets per export")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--seed", type=int, default=0, help="which tickets are sampled (another seed: another sample)"
    )
    p.add_argument(
        "--exports", default=",".join(r[0] for r in RUNS), help="comma-separated: it_tickets,endava"
    )
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sklearn.model_selection import StratifiedKFold

    from training.mapping import load_export, load_mapping

    rows = []
    for name, export, mapping_path in [r for r in RUNS if r[0] in args.exports.split(",")]:
        data = load_export(export, load_mapping(mapping_path))
        idx = sample_rows(data.texts, data.labels, args.sample, seed=args.seed)
        texts = [data.texts[i] for i in idx]
        vectors, rates = {}, {}
        for kind in ENCODERS:
            enc = encoder_for(kind)
            start = time.perf_counter()
            vectors[kind] = enc.encode(texts, progress=True)
            rates[kind] = len(texts) / (time.perf_counter() - start)
        for head, values in data.labels.items():
            y_all = np.array([values[i] for i in idx], dtype=object)
            keep = np.array([v is not None for v in y_all])
            classes, counts = np.unique(y_all[keep].astype(str), return_counts=True)
            common = set(classes[counts >= args.folds])
            keep &= np.array([str(v) in common for v in y_all])
            y = y_all[keep].astype(str)
            folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
            scores = {k: fold_scores(vectors[k][keep], y, folds) for k in ENCODERS}
            diffs = [np.subtract(scores[a], scores[b]) for _, a, b in PAIRS]
            rows.append((name, head, int(keep.sum()), scores, diffs))
            print(f"{name}/{head}: done", flush=True)
        print(
            f"{name}: embedding rate (texts/s, cache hits count too): "
            + ", ".join(f"{k} {rates[k]:.0f}" for k in ENCODERS),
            flush=True,
        )
    print(
        f"\n{args.folds}-fold macro-F1 of a logistic regression on the vectors, "
        f"{args.sample} sampled tickets per export (seed {args.seed}), load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| export | head | n | minilm (torch) | minilm-onnx g1 (int8) | minilm-onnx g2 (int8) | "
        + " | ".join(f"{label} (paired)" for label, _, _ in PAIRS)
        + " |"
    )
    print("|---" * (4 + len(ENCODERS) - 1 + len(PAIRS)) + "|")
    for name, head, n, scores, diffs in rows:
        cells = [f"{np.mean(scores[k]):.4f} ± {np.std(scores[k]):.4f}" for k in ENCODERS]
        cells += [f"{np.mean(d):+.4f} ± {np.std(d):.4f}" for d in diffs]
        print(f"| {name} | {head} | {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
