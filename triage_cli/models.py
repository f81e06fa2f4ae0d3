"""``triage promote`` and ``triage rollback``: who serves, decided from the evaluation report.

Both move the MLflow ``champion`` alias and rewrite ``models/CHAMPION`` (the pointer the
service reads); the gate and the bookkeeping live in :mod:`training.tracking`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES_PROMOTE = """examples:
  triage promote 3                                   # model version 3 of 'triage'
  triage promote models/20261127T040000Z-abc1234     # the version logged for this bundle
  triage promote 4 --data new_export.csv --mapping mapping.yaml
  triage promote 4 --force --reason "old champion mislabels the new VPN team"

The challenger is refused when its holdout macro-F1 on any head is below the champion's
(minus --margin). When the two were trained with different holdouts, both are scored on
the tickets of --data (default: the challenger's training export) that are in both
holdouts, i.e. that neither bundle was fitted or calibrated on.
"""


def register(subparsers) -> None:
    _register_promote(subparsers)
    _register_rollback(subparsers)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-name", default="triage", help="registered model name in MLflow (default: triage)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else "
        "sqlite:///<TRIAGE_HOME or working dir>/mlflow.db)",
    )
    p.add_argument(
        "--champion-file",
        type=Path,
        default=None,
        help="pointer file to rewrite (default: <TRIAGE_MODELS_DIR or models>/CHAMPION)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _register_promote(subparsers) -> None:
    p = subparsers.add_parser(
        "promote",
        help="make a trained model the champion the service serves",
        description="Move the MLflow 'champion' alias to a registered model version (and "
        "rewrite models/CHAMPION), unless it is worse than the current champion "
        "on the same holdout.",
        epilog=EXAMPLES_PROMOTE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("version", help="model version number, models:/name/N, or a bundle id/path")
    p.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="macro-F1 drop per head still accepted, e.g. 0.005 for noise (default: 0)",
    )
    p.add_argument(
        "--force", action="store_true", help="promote even when worse (recorded with who, when and --reason)"
    )
    p.add_argument("--reason", help="why (required with --force; recorded on the version)")
    p.add_argument(
        "--data",
        type=Path,
        help="export to score both bundles on when their holdouts differ (default: the challenger's export)",
    )
    p.add_argument("--mapping", type=Path, help="column mapping for --data")
    _common(p)
    p.set_defaults(func=run_promote)


def _register_rollback(subparsers) -> None:
    p = subparsers.add_parser(
        "rollback",
        help="give the champion alias back to the previous champion",
        description="Restore the champion that the current one replaced (repeatable: each "
        "rollback walks one step back) and rewrite models/CHAMPION.",
    )
    p.add_argument("--reason", help="why (recorded on the version rolled back from)")
    _common(p)
    p.set_defaults(func=run_rollback)


def _manifest(path: str) -> dict:
    try:
        return json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def holdout_evaluator(challenger_path: str, data: Path | None, mapping: Path | None):
    """Scores both bundles on the export's tickets that neither was fitted or calibrated on."""
    config = _manifest(challenger_path).get("config") or {}
    data = data or (Path(config["data_path"]) if config.get("data_path") else None)
    mapping = mapping or (Path(config["mapping_path"]) if config.get("mapping_path") else None)
    if not (data and mapping and data.exists() and mapping.exists()):
        return None

    def evaluate(challenger: str, champion: str):
        from training.holdout import shared_holdout_scores

        (mine, theirs), n = shared_holdout_scores([Path(challenger), Path(champion)], data, mapping)
        print(f"scored both bundles on {n} tickets of {data} in both holdouts", file=sys.stderr)
        return mine, theirs

    return evaluate


def _print(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    state = "promoted" if result.promoted else "not promoted"
    print(
        f"version {result.version} ({result.bundle_id}): {state}"
        + (" (FORCED)" if result.forced and result.promoted else "")
    )
    if result.previous:
        print(f"previous champion: version {result.previous}")
    if result.comparison:
        print(f"  {'head':<20}{'challenger':>11}{'champion':>10}{'delta':>9}")
        for head, c in result.comparison.items():
            new = "-" if c["challenger"] is None else f"{c['challenger']:.4f}"
            delta = "-" if c["delta"] is None else f"{c['delta']:+.4f}"
            print(f"  {head:<20}{new:>11}{c['champion']:>10.4f}{delta:>9}")
    for reason in result.reasons:
        print(f"  - {reason}")
    if result.champion_file:
        print(f"pointer: {result.champion_file}")


def run_promote(args: argparse.Namespace) -> int:
    from training import tracking

    if args.force and not args.reason:
        print("triage promote: error: --force needs --reason (it is recorded)", file=sys.stderr)
        return 2
    from . import workspace

    args.tracking_uri = workspace.tracking_uri(args.tracking_uri)
    args.champion_file = workspace.champion_file(args.champion_file)
    mc, _ = tracking.client(args.tracking_uri)
    mv = tracking.find_version(mc, args.model_name, args.version)
    evaluate = holdout_evaluator(tracking.bundle_local_path(mv), args.data, args.mapping)
    try:
        result = tracking.promote(
            mv.version,
            force=args.force,
            margin=args.margin,
            reason=args.reason,
            evaluate=evaluate,
            tracking_uri=args.tracking_uri,
            model_name=args.model_name,
            champion_file=args.champion_file,
            user=workspace.user(),
            fleet_database=workspace.setting("TRIAGE_DATABASE_URL") or None,
        )
    except tracking.PromotionRefused as exc:
        _print(exc.result, args.json)
        print(f"triage promote: refused: {exc} (use --force --reason ... to override)", file=sys.stderr)
        return 1
    _print(result, args.json)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from training import tracking

    from . import workspace

    result = tracking.rollback(
        reason=args.reason,
        tracking_uri=workspace.tracking_uri(args.tracking_uri),
        model_name=args.model_name,
        user=workspace.user(),
        champion_file=workspace.champion_file(args.champion_file),
        fleet_database=workspace.setting("TRIAGE_DATABASE_URL") or None,
    )
    _print(result, args.json)
    return 0
