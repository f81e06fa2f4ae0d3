"""`triage embed` / `triage score` on the same tickets, `--engine local` beside `--engine ray`
(Ray's local mode on this machine), issue 13 §3.

Each run is its own `triage` process, timed from start to exit (Ray's start-up included:
that is what a user waits for) beside the pipeline's own seconds (what the engine spent
on the rows). Both engines must write the same Parquet: the bench checks that the vectors
agree (cosine) and that the scored labels are identical.

The tickets are the shared it_tickets export (47,837, "the same 50 k tickets"), or its
first ``--rows``; they are copied to ``--workdir`` (default /tmp/triage-bench-engines), never
into the repository. `score` needs a bundle: one is trained first on a 5,000-row sample
(TF-IDF only, ~1 min), since what is measured is the engine, not the model.

    nice .venv/bin/python bench/bench_batch_engines.py                  # 47,837 tickets
    nice .venv/bin/python bench/bench_batch_engines.py --rows 5000      # a quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from shared_data import SHARED  # noqa: E402 - bench/ is on sys.path when run as a script

SOURCE = SHARED / "it_tickets" / "all_tickets_processed_improved_v3.csv"
MAPPING = ROOT / "bench" / "mappings" / "it_tickets.yaml"


def triage(*args: str) -> list[str]:
    return [sys.executable, "-m", "triage_cli", *args]


def run(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc.stdout


def copy_rows(rows: int | None, out: Path) -> Path:
    with (
        open(SOURCE, newline="", encoding="utf-8") as src,
        open(out, "w", newline="", encoding="utf-8") as dst,
    ):
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if rows is not None and i >= rows:
                break
            writer.writerow(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=None, help="first N tickets only (default: all 47,837)")
    ap.add_argument("--encoder", default="minilm-onnx", help="triage embed --encoder (default minilm-onnx)")
    ap.add_argument("--engines", nargs="+", default=["local", "ray"])
    ap.add_argument("--steps", nargs="+", default=["embed", "score"])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/triage-bench-engines"))
    args = ap.parse_args()

    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = copy_rows(args.rows, work / "tickets.csv")
    n = sum(1 for _ in open(data, encoding="utf-8")) - 1
    print(f"{n} tickets; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}\n")
    bundle = None
    if "score" in args.steps:
        run(
            triage(
                "train", "--data", str(data), "--mapping", str(MAPPING), "--out", str(work / "models"),
                "--encoder", "none", "--max-rows", "5000", "--no-incremental", "--no-tracking", "--json",
            )
        )  # fmt: skip
        bundle = next(p for p in (work / "models").iterdir() if p.is_dir())
    rows = []
    for step in args.steps:
        for engine in args.engines:
            out = work / f"{step}-{engine}"
            cmd = triage(
                step, "--data", str(data), "--mapping", str(MAPPING), "--out", str(out),
                "--engine", engine, "--json",
            )  # fmt: skip
            cmd += ["--encoder", args.encoder] if step == "embed" else ["--bundle", str(bundle)]
            wall, stdout = run(cmd)
            inner = json.loads(stdout.strip().splitlines()[-1])["seconds"]
            rows.append({"step": step, "engine": engine, "wall": wall, "pipeline": inner, "out": out})
            print(
                f"{step:5} {engine:5} wall {wall:7.1f} s  pipeline {inner:7.1f} s  {n / wall:7.1f} rows/s",
                flush=True,
            )
    print("\n| step | engine | wall s (process) | pipeline s | rows/s (wall) | ratio to local |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        local = next(x for x in rows if x["step"] == r["step"] and x["engine"] == "local")
        print(
            f"| {r['step']} | {r['engine']} | {r['wall']:.1f} | {r['pipeline']:.1f} | {n / r['wall']:.1f} | "
            f"{r['wall'] / local['wall']:.2f} |"
        )
    agree(rows)


def agree(rows: list[dict]) -> None:
    """The engines wrote the same thing: vectors by key (min cosine), labels by row."""
    import numpy as np

    from training.batch import read_scores, read_vectors

    by = {(r["step"], r["engine"]): r["out"] for r in rows}
    if ("embed", "local") in by and ("embed", "ray") in by:
        (ka, va), (kb, vb) = read_vectors(by["embed", "local"]), read_vectors(by["embed", "ray"])
        pos = {k: i for i, k in enumerate(kb)}
        cos = np.einsum("ij,ij->i", va, vb[[pos[k] for k in ka]])
        print(f"\nembed: same {len(ka)} keys: {set(ka) == set(kb)}; cosine local vs ray min {cos.min():.4f}")
    if ("score", "local") in by and ("score", "ray") in by:
        a, b = read_scores(by["score", "local"]), read_scores(by["score", "ray"])
        same = (a["row"].tolist() == b["row"].tolist()) and (a["team_label"] == b["team_label"]).all()
        print(f"score: {len(a)} rows, identical labels: {bool(same)}")


if __name__ == "__main__":
    main()
