"""Label quality on the shared team labels: do we find labels flipped on purpose?

Reads ../shared/data/it_tickets (never copied into the repo) through
bench/mappings/it_tickets.yaml, flips ``--flip`` (default 3 %) of the team labels to another
team (seeded), computes out-of-fold probabilities once, and scores, against the flipped set:

* confident learning (``training.label_quality``): ``self_confidence`` (the default: the
  calibrated confident joint estimates how many labels per class are wrong, the rows with
  the lowest probability of their given label are flagged), ``confident_joint`` (the
  off-diagonal cells themselves) and ``both``;
* baselines from the same run and the same probabilities, flagging as many rows as the
  default does: lowest max-probability, and lowest probability of the given label over all
  classes at once (which needs the count the confident joint estimated).

The export's own label errors count as false alarms here, so precision is a lower bound.

    nice python bench/bench_label_quality.py [--limit 20000] [--json out.json] [--cache oof.npz]

Measured 2026-11-27 (all 47,837 tickets, 8 teams, 1,435 labels flipped, 5 folds; the
out-of-fold pass took 19 min on 2 busy cores):

    method                             flagged  precision  recall
    self_confidence (default)             3512      0.381   0.933
    confident_joint                       2476      0.407   0.703
    both                                  2476      0.407   0.703
    baseline_low_max_probability          3512      0.026   0.065
    baseline_low_given_probability        3512      0.385   0.942

Precision is against the flipped labels only: the export's own noise (out-of-fold accuracy
against the flipped labels: 0.83) fills the rest of the list: real review candidates too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training import label_quality as lq  # noqa: E402
from training.mapping import load_export, load_mapping  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "it_tickets" / "all_tickets_processed_improved_v3.csv"
MAPPING = ROOT / "bench" / "mappings" / "it_tickets.yaml"


def flip_labels(labels: list[str], share: float, seed: int) -> tuple[list[str], set[int]]:
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    idx = rng.choice(len(labels), size=int(round(share * len(labels))), replace=False)
    out = list(labels)
    for i in idx:
        out[i] = str(rng.choice([c for c in classes if c != labels[i]]))
    return out, set(int(i) for i in idx)


def score(flagged: np.ndarray, truth: set[int]) -> dict:
    got = set(np.flatnonzero(flagged).tolist())
    tp = len(got & truth)
    return {
        "flagged": len(got),
        "true_positives": tp,
        "precision": round(tp / max(1, len(got)), 4),
        "recall": round(tp / max(1, len(truth)), 4),
    }


def lowest(values: np.ndarray, k: int) -> np.ndarray:
    mask = np.zeros(len(values), bool)
    mask[np.argsort(values, kind="stable")[:k]] = True
    return mask


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--mapping", type=Path, default=MAPPING)
    ap.add_argument("--head", default="team")
    ap.add_argument("--flip", type=float, default=0.03)
    ap.add_argument("--limit", type=int, default=0, help="first N labelled rows only (0: all)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--cache",
        type=Path,
        help="keep the out-of-fold probabilities here (.npz) for the same data, flip, folds and seed",
    )
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: {args.data} not found (the shared data lives beside the repo)")
        return 0
    t0 = time.perf_counter()
    data = load_export(args.data, load_mapping(args.mapping))
    rows = [i for i, v in enumerate(data.labels[args.head]) if v is not None]
    if args.limit:
        rows = rows[: args.limit]
    texts = [data.texts[i] for i in rows]
    labels, truth = flip_labels([str(data.labels[args.head][i]) for i in rows], args.flip, args.seed)
    if args.cache and args.cache.exists():
        cached = np.load(args.cache, allow_pickle=True)
        proba, classes = cached["proba"], [str(c) for c in cached["classes"]]
    else:
        X = lq.vectorise(texts)
        proba, classes = lq.out_of_fold_proba(X, labels, n_splits=args.folds, seed=args.seed)
        if args.cache:
            np.savez_compressed(args.cache, proba=proba, classes=np.asarray(classes, dtype=object))
    oof_seconds = time.perf_counter() - t0
    col = {c: j for j, c in enumerate(classes)}
    given = np.asarray([col[v] for v in labels])
    results = {}
    for method in lq.METHODS:
        flagged, _ = lq.find_label_issues(proba, given, method=method)
        results[method] = score(flagged, truth)
    k = results["self_confidence"]["flagged"]
    results["baseline_low_max_probability"] = score(lowest(proba.max(axis=1), k), truth)
    results["baseline_low_given_probability"] = score(lowest(proba[np.arange(len(given)), given], k), truth)
    report = {
        "data": str(args.data.name),
        "head": args.head,
        "rows": len(rows),
        "classes": len(classes),
        "flipped": len(truth),
        "flip_share": args.flip,
        "folds": args.folds,
        "oof_accuracy_vs_flipped": round(float((proba.argmax(1) == given).mean()), 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "oof_seconds": round(oof_seconds, 1),
        "results": results,
    }
    print(
        f"{report['rows']} rows, {report['classes']} classes, {len(truth)} labels flipped "
        f"({args.flip:.0%}); out-of-fold in {oof_seconds:.0f}s"
    )
    print(f"{'method':<34}{'flagged':>8}{'precision':>11}{'recall':>8}")
    for name, r in results.items():
        print(f"{name:<34}{r['flagged']:>8}{r['precision']:>11.3f}{r['recall']:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
