"""``triage embed`` and ``triage score``: history embedded and scored in batch, locally or on Ray.

Both read an export through a column mapping and write a Parquet dataset
(training/batch.py describes the columns). ``--engine local`` (the default) runs
in this process; ``--engine ray`` runs the same batches as a Ray Data pipeline, in
local mode on this machine or, with ``--address``, unchanged on a Ray cluster.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLES_EMBED = """examples:
  triage embed --data tickets.csv --mapping mapping.yaml --out var/embeddings
  triage embed --data tickets.parquet --mapping mapping.yaml --out var/emb --engine ray
  triage embed ... --engine ray --address ray://head.example:10001   # a running cluster
  triage train --data tickets.csv --mapping mapping.yaml --embeddings var/embeddings

The output folder holds Parquet files with row, key (sha256 of the model text) and
vector; `triage train --embeddings` reads them instead of embedding again.
"""

EXAMPLES_SCORE = """examples:
  triage score --bundle models/20261127T040000Z-abc1234 --data tickets.csv \\
      --mapping mapping.yaml --out var/scores
  triage score ... --engine ray --address auto     # on the cluster this machine joined

The output holds row plus <head>_label, <head>_probability and <head>_decision.
"""


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help='the export: .csv or .tsv (any delimiter, encoding), .jsonl, .json (an array or {"issues": [...]}) or .parquet',
    )
    p.add_argument("--mapping", required=True, type=Path, help="column mapping YAML")
    p.add_argument(
        "--out", required=True, type=Path, help="output folder for the Parquet files (must not hold any yet)"
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default, small desks); ray: a Ray Data pipeline",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (ray://host:10001, or 'auto' on a cluster node); "
        "default: start Ray in local mode on this machine",
    )
    p.add_argument("--batch-size", type=int, default=256, help="rows per batch (default 256)")
    p.add_argument("--concurrency", type=int, default=None, help="Ray actors (default: one per CPU Ray sees)")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embed every ticket of an export into Parquet (local or Ray)",
        description="Embed the model text of every ticket of an export with the sentence "
        "encoder and write row/key/vector Parquet files, for training features, "
        "label-quality checks, clustering and backfills.",
        epilog=EXAMPLES_EMBED,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _engine_options(p)
    p.add_argument(
        "--encoder",
        choices=["minilm", "minilm-onnx", "hashing"],
        default="minilm-onnx",
        help="minilm-onnx (default: int8 ONNX, the encoder `triage train` uses by default, "
        "so its vectors are the ones training looks up), minilm (torch) or hashing (fast, "
        "for tests)",
    )
    p.set_defaults(func=run_embed)

    p = subparsers.add_parser(
        "score",
        help="classify every ticket of an export with a bundle into Parquet",
        description="Run a model bundle over every ticket of an export (backfills, label "
        "quality) and write its label, probability and decision per head.",
        epilog=EXAMPLES_SCORE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _engine_options(p)
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder (models/<id>)")
    p.set_defaults(func=run_score)


def _engine(args) -> dict:
    return {
        "engine": args.engine,
        "address": args.address,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
    }


def _report(args, result) -> int:
    summary = {
        "engine": result.engine,
        "rows": result.rows,
        "out": str(result.out),
        "seconds": round(result.seconds, 2),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{result.rows} rows in {result.seconds:.1f} s on {result.engine} -> {result.out}")
    return 0


def run_embed(args) -> int:
    from training.batch import embed

    return _report(args, embed(args.data, args.mapping, args.out, encoder=args.encoder, **_engine(args)))


def run_score(args) -> int:
    from training.batch import score

    return _report(args, score(args.bundle, args.data, args.mapping, args.out, **_engine(args)))
