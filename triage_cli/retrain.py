"""``triage retrain`` and ``triage label-quality``: retrain on agents' labels, check labels.

``triage retrain`` gathers the historical export plus the store's human labels, trains a
challenger, prints the side-by-side table on the frozen holdout and the recent slice, and
promotes it only if the gate passes (``--force`` overrides and is recorded). ``--watch``
runs the same on a schedule (or when enough labels arrived), under the retrain lock.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path

log = logging.getLogger("triage.retrain")

EXAMPLES = """examples:
  triage retrain                                  # champion's export + store labels, gate, promote
  triage retrain --data export.csv --mapping mapping.yaml --margin 0.005
  triage retrain --force --reason "new team, old champion cannot know it"
  triage retrain --without-flagged                # drop likely label errors from training first
  triage retrain --watch --min-new-labels 200 --interval-hours 168
  triage label-quality --data export.csv --mapping mapping.yaml --out flagged.csv

exit status: 0 promoted, 3 kept as challenger (the gate's reasons are printed and recorded in
MLflow and models/retrain-log.jsonl), 1 another retrain holds the lock, 2 usage error.
"""


def register(subparsers) -> None:
    _register_retrain(subparsers)
    _register_label_quality(subparsers)


def _register_retrain(subparsers) -> None:
    p = subparsers.add_parser(
        "retrain",
        help="train a challenger on the export + agents' labels; promote if better",
        description="Gather the historical export and the labels agents confirmed or corrected "
        "in the store, train a challenger with the same pipeline, compare it with the "
        "champion on the frozen holdout, and promote it only if the gate passes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, help="historical export (default: the champion's)")
    p.add_argument("--mapping", type=Path, help="column mapping (default: the champion's)")
    p.add_argument("--models", type=Path, help="models dir (default: TRIAGE_MODELS_DIR or models)")
    p.add_argument(
        "--database-url", help="store (default: TRIAGE_DATABASE_URL, else var/triage.db when it exists)"
    )
    p.add_argument(
        "--margin", type=float, default=0.01, help="macro-F1 drop per head still accepted (default 0.01)"
    )
    p.add_argument("--ece-tolerance", type=float, default=0.02, help="ECE rise accepted (0.02)")
    p.add_argument(
        "--coverage-tolerance",
        type=float,
        default=0.03,
        help="drop of coverage at the target precision accepted (0.03)",
    )
    p.add_argument(
        "--force", action="store_true", help="promote even if the gate refuses (recorded with --reason)"
    )
    p.add_argument("--reason", help="why (recorded on the promotion)")
    p.add_argument(
        "--without-flagged",
        action="store_true",
        help="blank likely label errors (label quality) outside the holdout first",
    )
    p.add_argument("--encoder", choices=("minilm", "hashing"), help="override the encoder")
    p.add_argument(
        "--no-mlflow",
        action="store_true",
        help="do not log to MLflow; promotion only rewrites models/CHAMPION",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///<project>/mlflow.db)",
    )
    p.add_argument(
        "--reload-url", help="after a promotion, POST <url>/v1/admin/reload (admin key from TRIAGE_ADMIN_KEY)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    w = p.add_argument_group("schedule (--watch)")
    w.add_argument("--watch", action="store_true", help="loop: retrain when due, under the lock")
    w.add_argument(
        "--interval-hours", type=float, default=168.0, help="retrain at least this often (default 168)"
    )
    w.add_argument(
        "--min-new-labels",
        type=int,
        default=200,
        help="retrain as soon as this many new labels arrived (default 200)",
    )
    w.add_argument("--poll-seconds", type=float, default=60.0, help="check period (default 60)")
    w.add_argument("--max-runs", type=int, help="stop after this many retrains")
    w.add_argument("--max-seconds", type=float, help="stop after this long")
    p.set_defaults(func=run_retrain)


def _register_label_quality(subparsers) -> None:
    p = subparsers.add_parser(
        "label-quality",
        help="list historical tickets whose label looks wrong",
        description="Out-of-fold probabilities per head and confident learning: flag the "
        "tickets whose given label the model confidently disagrees with, for review.",
    )
    p.add_argument("--data", type=Path, required=True, help="export to check")
    p.add_argument("--mapping", type=Path, required=True, help="its column mapping")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("flagged.csv"),
        help="review list, .csv or .json (default flagged.csv)",
    )
    p.add_argument("--head", action="append", help="only this head (repeatable)")
    p.add_argument(
        "--folds",
        type=int,
        default=5,
        help="K of the out-of-fold scoring: each row is scored by a model that never saw it (default 5)",
    )
    p.add_argument(
        "--method",
        default="self_confidence",
        choices=("self_confidence", "confident_joint", "both"),
        help="self_confidence: per class, the estimated number of wrong labels with the lowest "
        "probability of their given label; confident_joint: the row's confident class (cleanlab's "
        "per-class thresholds) is another; both: confident_joint and the given class below its "
        "own threshold (fewer flags) (default self_confidence)",
    )
    p.add_argument(
        "--scores",
        type=Path,
        metavar="DIR",
        help="a `triage score` output folder (Parquet, local or Ray): flag rows whose "
        "scored label differs from the given one with probability >= --min-probability, "
        "instead of fitting out-of-fold models (the check for millions of tickets)",
    )
    p.add_argument(
        "--min-probability",
        type=float,
        default=0.9,
        help="with --scores: how probable the scored label must be to flag (default 0.9)",
    )
    p.add_argument(
        "--compare",
        type=Path,
        metavar="WORK_DIR",
        help="also train with and without the flagged labels (same holdout) and "
        "report how the holdout figures change",
    )
    p.add_argument(
        "--encoder",
        choices=("minilm", "hashing"),
        default="hashing",
        help="encoder for --compare (default hashing: fast)",
    )
    p.set_defaults(func=run_label_quality)


def _models(args) -> Path:
    from . import workspace

    return workspace.models_dir(args.models)


def open_store(url: str | None):
    """The store when one is configured or the default file exists; None otherwise."""
    from triage.store import Store

    from . import workspace

    default_file = workspace.var_dir() / "triage.db"
    if not url and not workspace.setting("TRIAGE_DATABASE_URL") and not default_file.exists():
        log.warning("no store (TRIAGE_DATABASE_URL unset, %s missing): historical export only", default_file)
        return None
    store = Store(workspace.database_url(url))
    store.upgrade()
    return store


def _job(args, models: Path, store):
    from training.gate import GateConfig
    from training.retrain import notify_reload, render_table, retrain

    from . import workspace

    def job():
        out = retrain(
            models,
            store=store,
            data=args.data,
            mapping=args.mapping,
            encoder=args.encoder,
            force=args.force,
            reason=args.reason,
            gate=GateConfig(args.margin, args.ece_tolerance, args.coverage_tolerance),
            without_flagged=args.without_flagged,
            tracking_uri=workspace.tracking_uri(args.tracking_uri),
            fleet_database=workspace.setting("TRIAGE_DATABASE_URL") or None,
            log_mlflow=not args.no_mlflow,
            signing_key=workspace.setting("TRIAGE_BUNDLE_SIGNING_KEY") or None,
        )
        if args.json:
            print(json.dumps(out.to_dict(), indent=2, default=str))
        else:
            print(render_table(out.table))
            _print_verdict(out)
        if out.promoted and args.reload_url:
            answer = notify_reload(args.reload_url, workspace.setting("TRIAGE_ADMIN_KEY") or None)
            print(f"service reloaded: {answer.get('bundle', {}).get('bundle_id')}")
        return out

    return job


def _print_verdict(out) -> None:
    state = "PROMOTED" if out.promoted else "kept as challenger"
    print(
        f"\nchallenger {out.challenger_id} vs champion {out.champion_id}: {state}"
        + (" (FORCED over the gate)" if out.forced and out.promoted else "")
    )
    for reason in out.decision.reasons:
        print(f"  - {reason}")
    d = out.data
    print(
        f"data: {d.get('base_rows')} historical rows + {d.get('store_rows')} store tickets; "
        f"frozen holdout {d.get('frozen_rows')} rows, recent slice {d.get('recent_rows')}"
    )


def run_retrain(args: argparse.Namespace) -> int:
    from training.schedule import Schedule, run_if_due, watch

    if args.force and not args.reason:
        print("triage retrain: error: --force needs --reason (it is recorded)", file=sys.stderr)
        return 2
    models = _models(args)
    store = open_store(args.database_url)
    job = _job(args, models, store)
    if not args.watch:
        out = run_if_due(job, models, Schedule(), store, force=True)
        if not out["ran"]:
            print(f"triage retrain: not run: {out['why']}", file=sys.stderr)
            return 1
        return 0 if out["result"].promoted or not out["result"].decision.reasons else 3
    schedule = Schedule(interval=timedelta(hours=args.interval_hours), min_new_labels=args.min_new_labels)
    outcomes = watch(
        job,
        models,
        schedule,
        store,
        poll_seconds=args.poll_seconds,
        max_runs=args.max_runs,
        max_seconds=args.max_seconds,
    )
    print(f"watch stopped after {len(outcomes)} checks, {sum(bool(o.get('ran')) for o in outcomes)} retrains")
    return 0


def run_label_quality(args: argparse.Namespace) -> int:
    from training import label_quality as lq

    flags, summary = lq.run(
        args.data,
        args.mapping,
        heads=args.head,
        out=args.out,
        n_splits=args.folds,
        method=args.method,
        scores=args.scores,
        min_probability=args.min_probability,
    )
    for head, s in summary.items():
        print(
            f"{head:<16} {s.get('flagged', 0):>6} of {s['rows']:>7} rows flagged "
            f"({s.get('share', 0):.1%}); "
            + (
                f"from {s['source']}"
                if "source" in s
                else f"out-of-fold accuracy {s.get('oof_accuracy', '-')}"
            )
        )
    print(f"review list: {args.out} ({len(flags)} rows, most suspicious first)")
    if args.compare:
        result = lq.compare_without(
            args.data, args.mapping, flags, args.compare, encoder=args.encoder, candidates=("tfidf",), cv=3
        )
        print(
            f"\nholdout with vs without the {result['blanked']} flagged training labels "
            f"({result['kept_in_holdout']} flagged holdout rows kept as they are):"
        )
        for head, m in result["heads"].items():
            f1 = m["macro_f1"]
            print(f"  {head:<16} macro-F1 {f1['with']:.4f} -> {f1['without']:.4f} ({f1['delta']:+.4f})")
    return 0
