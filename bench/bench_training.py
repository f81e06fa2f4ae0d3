"""Benchmark: train on the shared data and compare every head with the same-run reference.

Trains the team head on ../shared/data/it_tickets and the type / urgency / impact / category /
business-service heads on ../shared/data/endava (the same tickets: the text-hash split keeps
each ticket on one side in both files), then writes a table per head of the chosen model
against the TF-IDF + LinearSVC reference fitted on the same split, with calibration and
auto-apply figures, and whether the issue's targets are met.

    nice .venv/bin/python bench/bench_training.py                 # int8 ONNX MiniLM (cached), full data
    .venv/bin/python bench/bench_training.py --encoder hashing --sample 3000   # quick look
    nice .venv/bin/python bench/bench_training.py --encoder none  # TF-IDF candidates only

Nothing from the shared data is written into the repository: bundles go to a temporary folder
unless --models is given, the table to --out (default /tmp/triage-bench).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (or beside the folder of worktrees), or $TRIAGE_SHARED_DATA
from shared_data import SHARED  # noqa: E402 - bench/ is on sys.path when run as a script

RUNS = [  # (name, export, mapping)
    (
        "it_tickets",
        SHARED / "it_tickets" / "all_tickets_processed_improved_v3.csv",
        ROOT / "bench" / "mappings" / "it_tickets.yaml",
    ),
    ("endava", SHARED / "endava" / "all_tickets_subset.csv", ROOT / "bench" / "mappings" / "endava.yaml"),
    ("demo", ROOT / "data" / "demo" / "tickets.csv", ROOT / "data" / "demo" / "mapping.yaml"),
]
# issue 12: holdout macro-F1 goals per shared head; every head: ours >= the same-run reference,
# ECE <= 0.05 where the holdout has >= 100 rows, applied precision within 1.5 points of the
# target where >= 50 predictions are applied
TARGETS = {
    ("it_tickets", "team"): 0.89,
    ("endava", "urgency"): 0.45,
    ("endava", "business_service"): 0.45,
    ("endava", "category"): 0.60,
    ("endava", "type"): 0.98,
}
MAX_ECE, ECE_MIN_ROWS = 0.05, 100
APPLIED_SLACK, APPLIED_MIN_ROWS = 0.015, 50


def sample_export(path: Path, n: int | None, folder: Path) -> Path:
    """The first ``n`` rows (the endava file is the first rows of it_tickets: keep them aligned)."""
    if not n or not str(path).startswith(str(SHARED)):
        return path
    out = folder / path.name
    pd.read_csv(path, dtype=str, keep_default_na=False).head(n).to_csv(out, index=False)
    return out


def ece_floor(reliability: list[dict], draws: int = 400, seed: int = 0) -> float | None:
    """The ECE a perfectly calibrated head would show on these holdout rows, by sampling noise
    alone: per reliability bin, accuracy drawn as Binomial(count, mean confidence) / count.
    On ~120 rows it is ~0.05, so a small head's ECE is read against it, not against 0."""
    import numpy as np

    bins = [b for b in reliability if b.get("count")]
    if not bins:
        return None
    counts = np.asarray([b["count"] for b in bins])
    conf = np.asarray([b["mean_confidence"] for b in bins])
    acc = np.random.default_rng(seed).binomial(counts, conf, size=(draws, len(bins))) / counts
    return float((np.abs(acc - conf) * counts / counts.sum()).sum(axis=1).mean())


def head_row(run: str, head: str, rep: dict, target_precision: float) -> dict:
    m, at = rep["metrics"], rep["metrics"]["at_thresholds"]
    row = {
        "data": run,
        "head": head,
        "chosen": rep["chosen"],
        "n_holdout": m["n"],
        "macro_f1": m["macro_f1"],
        "reference_f1": rep["reference"]["macro_f1"],
        "accuracy": m["accuracy"],
        "reference_acc": rep["reference"]["accuracy"],
        "ece_15": m["ece_15"],
        "ece_floor": ece_floor(m.get("reliability") or []),
        "calibrator": rep.get("calibrator"),
        "applied_n": at["applied"]["n"],
        "applied_coverage": at["applied"]["coverage"],
        "applied_precision": at["applied"]["precision"],
        "apply_disabled": rep.get("apply_disabled"),
        "context": (rep.get("context") or {}).get("groups"),
        "context_ablation": (rep.get("context") or {}).get("ablation"),
        "refit_rows": (rep.get("refit") or {}).get("rows"),
        "candidates_selection": rep["candidates"],
        "candidates_holdout": rep["candidates_holdout"],
        "candidates_beat_reference": rep.get("candidates_beat_reference") or {},
        # the same on the calibration split alone (a candidate must not trail there either)
        "candidates_beat_reference_calibration": rep.get("candidates_beat_reference_calibration") or {},
        # share of paired holdout resamples where the reference scores above ours: a loss seen
        # in under ~90 % of them is within the holdout's noise
        "p_ref_above": (rep.get("holdout_vs_reference") or {}).get("share_of_resamples_ours_below"),
    }
    # ours >= reference; equality is expected when the reference itself was chosen
    checks = {"vs_reference": m["macro_f1"] >= rep["reference"]["macro_f1"] - 1e-9}
    if m["n"] >= ECE_MIN_ROWS:
        checks["ece"] = m["ece_15"] is not None and m["ece_15"] <= MAX_ECE
    if at["applied"]["n"] >= APPLIED_MIN_ROWS:
        checks["applied"] = (at["applied"]["precision"] or 0) >= target_precision - APPLIED_SLACK
    target = TARGETS.get((run, head))
    if target is not None:
        checks["goal"] = m["macro_f1"] >= target
    row["target"] = target
    row["meets"] = all(checks.values())
    row["checks"] = checks
    return row


def screen_line(screen: dict | None) -> str | None:
    """What the vector screen decided (None: the export was too small to screen, or --no-screen)."""
    if not screen:
        return None
    heads = "; ".join(
        f"{h}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in (r.get("oof_macro_f1") or r).items() if isinstance(v, float))
        for h, r in (screen.get("heads") or {}).items()
    )
    verdict = "vectors computed for every row" if screen.get("keep") else "no vectors beyond the sample"
    return f"{verdict} ({screen.get('rule')}); sample out-of-fold macro-F1: {heads}"


def fmt(x) -> str:
    if isinstance(x, (list, tuple)):
        return ", ".join(map(str, x)) or "-"
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def markdown(rows: list[dict]) -> str:
    cols = [
        "data",
        "head",
        "chosen",
        "n_holdout",
        "macro_f1",
        "reference_f1",
        "accuracy",
        "reference_acc",
        "p_ref_above",
        "target",
        "ece_15",
        "ece_floor",
        "applied_n",
        "applied_coverage",
        "applied_precision",
        "context",
        "meets",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    lines.append("")
    lines += [
        f"- {r['data']}/{r['head']} candidates (selection: train out-of-fold + calibration → holdout macro-F1): "
        + ", ".join(
            f"{k} {r['candidates_selection'][k]:.3f} → {r['candidates_holdout'][k]:.3f}"
            + (
                f" (beats reference in {r['candidates_beat_reference'][k]:.0%} of resamples"
                + (
                    f", {r['candidates_beat_reference_calibration'][k]:.0%} on calibration)"
                    if k in r["candidates_beat_reference_calibration"]
                    else ")"
                )
                if k != "reference" and k in r["candidates_beat_reference"]
                else ""
            )
            for k in r["candidates_selection"]
        )
        for r in rows
    ]
    lines += [
        f"- {r['data']}/{r['head']} failed checks: " + ", ".join(k for k, ok in r["checks"].items() if not ok)
        for r in rows
        if not r["meets"]
    ]
    lines += [
        f"- {r['data']}/{r['head']} never applies: {r['apply_disabled']}"
        for r in rows
        if r.get("apply_disabled")
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--encoder",
        choices=["minilm-onnx", "minilm", "hashing", "none"],
        default="minilm-onnx",
        help="sentence encoder of the embedding/combined candidates: minilm-onnx (int8 ONNX "
        "MiniLM, the default encoder), minilm (torch), hashing (weightless, quick look); "
        "none: TF-IDF candidates only (reference, reference_bias, tfidf): no sentence vectors",
    )
    ap.add_argument("--sample", type=int, default=None, help="use only the first N rows of each file")
    ap.add_argument("--runs", nargs="+", choices=[r[0] for r in RUNS], default=[r[0] for r in RUNS])
    ap.add_argument("--models", type=Path, default=None, help="keep the bundles here")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "triage-bench")
    ap.add_argument("--target-precision", type=float, default=0.95)
    ap.add_argument(
        "--no-screen",
        action="store_true",
        help="embed every row even where the vector screen (training/screening.py) finds on a "
        "sample that TF-IDF wins: the vector candidates then compete on the full data",
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from training.pipeline import train
    from triage.classifiers import KINDS

    args.out.mkdir(parents=True, exist_ok=True)
    rows, timings, screens = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        for name, export, mapping in RUNS:
            if name not in args.runs:
                continue
            t0 = time.time()
            data = sample_export(export, args.sample, Path(tmp))
            kinds = ("reference", "reference_bias", "tfidf") if args.encoder == "none" else KINDS
            result = train(
                data,
                mapping,
                args.models or Path(tmp) / "models",
                encoder=None if args.encoder == "none" else args.encoder,
                target_precision=args.target_precision,
                progress=True,
                candidates=kinds,
                screen=not args.no_screen,
            )
            timings[name] = round(time.time() - t0, 1)
            screens[name] = screen_line(result.report.get("vector_screen"))
            rows += [
                head_row(name, h, rep, args.target_precision) for h, rep in result.report["heads"].items()
            ]
    table = markdown(rows)
    table += "".join(f"\n- {run} vector screen: {line}" for run, line in screens.items() if line)
    (args.out / "bench_training.md").write_text(table + "\n")
    (args.out / "bench_training.json").write_text(
        json.dumps(
            {"rows": rows, "seconds": timings, "encoder": args.encoder, "sample": args.sample},
            indent=2,
            default=str,
        )
    )
    print(table)
    print(f"\nseconds: {timings}\nwritten: {args.out / 'bench_training.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
