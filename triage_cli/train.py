"""``triage train`` and ``triage evaluate``: the data scientist's two commands.

``train`` reads an export through a column mapping, compares the candidate heads,
chooses thresholds, writes a bundle with its report and (when the tracking module
is installed) logs the run to MLflow. ``evaluate`` scores an existing bundle on an
export. ``promote`` lives with the MLflow code (training/tracking.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from triage.thresholds import SUGGEST_PRECISION, TARGET_PRECISION

EXAMPLES_TRAIN = """examples:
  triage train --data exports/tickets.csv --mapping mapping.yaml
  triage train --data tickets.parquet --mapping mapping.yaml --encoder hashing --out /tmp/models

The mapping YAML names the export's columns (see bench/mappings/ and data/demo/mapping.yaml):
  text: {subject: title, body: description}
  labels: {type: {column: kind, rename: {0: incident, 1: service_request}}, team: assignment_group}
  priority: {derive_from: [impact, urgency]}
"""

EXAMPLES_EVALUATE = """examples:
  triage evaluate --bundle models/20261127T040000Z-abc1234 --data tickets.csv --mapping mapping.yaml
  triage evaluate --bundle models/... --data tickets.csv --mapping mapping.yaml --split holdout --json
"""


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_evaluate(subparsers)


def _register_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the classifiers on an export and write a model bundle",
        description="Train type / priority / team heads on a help-desk export (CSV, JSON Lines "
        "or Parquet) read through a column mapping; compare TF-IDF, sentence-"
        "embedding and combined models on the same split; choose apply/suggest "
        "thresholds on a calibration split; report on a held-out split; write "
        "models/<UTC time>-<git sha>/ atomically.",
        epilog=EXAMPLES_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help='the export: .csv or .tsv (any delimiter, encoding), .jsonl, .json (an array or {"issues": [...]}) or .parquet',
    )
    p.add_argument(
        "--mapping",
        type=Path,
        help="column mapping YAML (required; `triage mapping --data EXPORT` drafts one)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("models"),
        help="folder the bundle is written into (default: models/)",
    )
    p.add_argument(
        "--encoder",
        choices=["minilm", "minilm-onnx", "hashing", "none"],
        default="minilm-onnx",
        help="sentence encoder for the embedding and combined candidates: minilm "
        "(all-MiniLM-L6-v2 on torch), minilm-onnx (the same model as int8 "
        "ONNX: 2-3x faster to train and to serve; the bundle is then served "
        "by it too), hashing (fast, for tests), none (TF-IDF only); vectors "
        "are cached on disk by text (default: minilm-onnx; its macro-F1 matched "
        "minilm within noise on both shared exports, bench/bench_encoders.py)",
    )
    p.add_argument(
        "--target-precision",
        type=float,
        default=TARGET_PRECISION,
        help="precision auto-applied predictions must reach on the calibration "
        f"split, per class (default: {TARGET_PRECISION})",
    )
    p.add_argument(
        "--suggest-precision",
        type=float,
        default=SUGGEST_PRECISION,
        help=f"precision for the lower 'suggest' threshold (default: {SUGGEST_PRECISION})",
    )
    p.add_argument(
        "--heads", nargs="+", metavar="HEAD", help="train only these heads of the mapping (default: all)"
    )
    p.add_argument("--seed", type=int, default=0, help="split and model seed (default: 0)")
    p.add_argument(
        "--max-rows",
        type=int,
        default=None,
        metavar="N",
        help="read the export as a stream and fit the TF-IDF / embedding candidates on a "
        "stratified sample of at most N rows (per class of the first head; rare classes "
        "keep up to 50 rows); the rest of the file trains a full-data candidate (hashed "
        "n-grams + SGD, fitted slice by slice) that competes with them: memory is bounded "
        "by N, not by the export",
    )
    p.add_argument(
        "--no-incremental",
        action="store_true",
        help="with --max-rows: no full-data candidate, only the sample is used",
    )
    p.add_argument(
        "--embeddings",
        type=Path,
        default=None,
        help="a `triage embed` output folder: its vectors are used instead of "
        "embedding again (texts it lacks are embedded as usual)",
    )
    p.add_argument(
        "--no-screen",
        action="store_true",
        help="embed every row even when the embedding candidates lose to TF-IDF on a "
        "sample first (by default, exports of 8,000+ rows are screened and embedded "
        "only if the vectors can win: training/screening.py)",
    )
    p.add_argument("--no-tracking", action="store_true", help="do not log the run to MLflow")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_train)


def _register_evaluate(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score an existing bundle on an export",
        description="Score a bundle on an export read through a mapping: accuracy, macro-F1, "
        "per-class results, calibration (ECE) and precision/coverage at the "
        "bundle's thresholds, per head.",
        epilog=EXAMPLES_EVALUATE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder (models/<id>)")
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help='the export: .csv or .tsv (any delimiter, encoding), .jsonl, .json (an array or {"issues": [...]}) or .parquet',
    )
    p.add_argument("--mapping", required=True, type=Path, help="column mapping YAML")
    p.add_argument(
        "--split",
        choices=["all", "train", "calibration", "holdout"],
        default="all",
        help="score all rows, or only those the bundle's split put on one side "
        "(the split is a function of the text) (default: all)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from training.evaluation import render_text_summary
    from training.pipeline import train

    if args.mapping is None:  # a newcomer's first try: say what a mapping is and how to get one
        print(
            "triage train: error: --mapping is required: a YAML file naming which of the export's "
            "columns is the text and which are the labels to learn. Draft one from the export, "
            f"read it, then train:\n  triage mapping --data {args.data} --out mapping.yaml\n"
            f"  triage train --data {args.data} --mapping mapping.yaml",
            file=sys.stderr,
        )
        return 2
    candidates = (
        ("reference", "tfidf") if args.encoder == "none" else ("reference", "tfidf", "embedding", "combined")
    )
    if args.max_rows and not getattr(args, "no_incremental", False):
        candidates += ("incremental",)  # training/incremental.py: the rest of the file
    encoder = None if args.encoder in ("minilm", "none") else args.encoder
    if getattr(args, "embeddings", None) is not None and args.encoder != "none":
        from training.batch import PrecomputedEncoder
        from training.pipeline import resolve_encoder

        encoder = PrecomputedEncoder(resolve_encoder(encoder), args.embeddings)
    result = train(
        args.data,
        args.mapping,
        args.out,
        encoder=encoder,
        target_precision=args.target_precision,
        suggest_precision=args.suggest_precision,
        heads=args.heads,
        candidates=candidates,
        seed=args.seed,
        progress=sys.stderr.isatty(),
        signing_key=_signing_key(),
        max_rows=args.max_rows,
        screen=not getattr(args, "no_screen", False),
    )
    if not args.no_tracking and result.bundle_path is not None:
        _log_to_mlflow(result)
    if args.json:
        print(json.dumps(result.report, indent=2, default=str))
    else:
        print(render_text_summary(result.report))
        print(f"\nbundle: {result.bundle_path}")
        if result.report_dir:
            print(f"report: {result.report_dir / 'report.html'}")
    return _say_skipped(result.report.get("skipped_heads") or {}, result.bundle_path is not None)


def _say_skipped(skipped: dict, written: bool) -> int:
    """Each head not trained and why, on stderr; no head at all is an error (exit 2), not
    a quiet "bundle: None" with exit 0."""
    for head, info in skipped.items():
        print(
            f"head {head} not trained: {info.get('reason', 'too few labelled rows or classes')}",
            file=sys.stderr,
        )
    if written:
        return 0
    print(
        "triage train: error: no head could be trained, so no bundle was written (each head's "
        "reason is above; a head needs two or more classes, a few rows each, in several distinct texts)",
        file=sys.stderr,
    )
    return 2


def _signing_key() -> str | None:
    """``TRIAGE_BUNDLE_SIGNING_KEY``: when set, the bundle's manifest is signed."""
    from . import workspace

    return workspace.setting("TRIAGE_BUNDLE_SIGNING_KEY") or None


def _log_to_mlflow(result) -> None:
    try:
        from training.tracking import log_training_run
    except ImportError:
        return
    try:
        from . import workspace

        log_training_run(result, result.bundle_path, tracking_uri=workspace.tracking_uri())
    except Exception as exc:  # the bundle is written; a tracking hiccup must not lose it
        print(f"triage train: warning: MLflow logging failed: {exc}", file=sys.stderr)


def run_evaluate(args: argparse.Namespace) -> int:
    from training.evaluation import render_text_summary
    from training.pipeline import evaluate_bundle

    result = evaluate_bundle(args.bundle, args.data, args.mapping, split=args.split)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(render_text_summary(result))
    return 0
