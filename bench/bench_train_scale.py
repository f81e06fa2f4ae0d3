"""Training at scale (issue 13 §4): a synthetic 1 M-row export trained through `triage train`,
beside a 50 k-row one, with wall time, peak RSS and macro-F1.

The exports are generated at run time from the shared it_tickets file and never written
into the repository (default folder: /tmp/triage-bench-scale). How:

* the 47,837 tickets are split by a hash of their text: 80 % are the *pool* the synthetic
  rows are drawn from, 20 % are the *test* tickets, never drawn (so the test figure is not
  inflated by near-copies of itself in the training rows, which the training report's own
  holdout is: its split is by exact text, and the noise makes every copy a new text);
* every synthetic row is a pool ticket with realistic noise: words dropped (8 %), neighbours
  swapped (4 %), typos (3 % of words: a letter dropped, doubled or replaced), a greeting or
  sign-off added (30 %), and 3 % of labels flipped to another team (mislabelled tickets);
* each size is trained by `triage train` in its own process, timed, its peak RSS read with
  GNU time; then `triage evaluate` scores the bundle on the test tickets (macro-F1), the
  reference being the same bench's 50 k-row run.

    nice .venv/bin/python bench/bench_train_scale.py                       # 50 k and 1 M
    nice .venv/bin/python bench/bench_train_scale.py --rows 50000 --max-rows 0   # 50 k, in memory

Targets (issue 13, 2-core machine): 1 M rows ≤ 30 min, peak RSS ≤ 8 GB, model choice recorded.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from shared_data import SHARED  # noqa: E402 - bench/ is on sys.path when run as a script

DEFAULT_SOURCE = SHARED / "it_tickets" / "all_tickets_processed_improved_v3.csv"
MAPPING = ROOT / "bench" / "mappings" / "it_tickets.yaml"
GREETINGS = ["hi team", "hello", "dear support", "good morning", "hi all", "hello it"]
SIGNOFFS = ["thanks", "thank you", "kind regards", "best regards", "many thanks", "cheers"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def read_source(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return [(r["Document"], r["Topic_group"]) for r in csv.DictReader(fh) if r["Document"].strip()]


def is_test(text: str) -> bool:
    """20 % of the tickets, by a hash of their text: never drawn into a synthetic export."""
    return hashlib.sha256(text.encode()).digest()[0] < 52


def typo(word: str, rng: random.Random) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(len(word))
    kind = rng.random()
    if kind < 0.33:
        return word[:i] + word[i + 1 :]
    if kind < 0.66:
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice(LETTERS) + word[i + 1 :]


def noisy(text: str, rng: random.Random) -> str:
    words = [w for w in text.split() if rng.random() >= 0.08] or text.split()
    for i in range(len(words) - 1):
        if rng.random() < 0.04:
            words[i], words[i + 1] = words[i + 1], words[i]
    words = [typo(w, rng) if rng.random() < 0.03 else w for w in words]
    if rng.random() < 0.3:
        words = (
            rng.choice(GREETINGS).split() + words
            if rng.random() < 0.5
            else words + rng.choice(SIGNOFFS).split()
        )
    return " ".join(words)


def generate(pool: list[tuple[str, str]], rows: int, out: Path, seed: int) -> Path:
    """A synthetic export of ``rows`` noisy pool tickets (written once per size and seed)."""
    if out.exists():
        return out
    rng = random.Random(seed)
    teams = sorted({t for _, t in pool})
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Document", "Topic_group"])
        for _ in range(rows):
            text, team = pool[rng.randrange(len(pool))]
            if rng.random() < 0.03:
                team = rng.choice([t for t in teams if t != team])
            w.writerow([noisy(text, rng), team])
    tmp.rename(out)
    return out


def run_timed(cmd: list[str], log: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a command, RSS from GNU time."""
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "PEAK_RSS_KB=%M", *cmd], stdout=subprocess.PIPE, stderr=err, text=True
        )
    wall = time.perf_counter() - start
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}:\n{text[-3000:]}")
    peak = next(int(line.split("=")[1]) for line in text.splitlines() if line.startswith("PEAK_RSS_KB="))
    return wall, peak / 1024, proc.stdout


def triage(*args: str) -> list[str]:
    return [sys.executable, "-m", "triage_cli", *args]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--rows", type=int, nargs="+", default=[50_000, 1_000_000])
    ap.add_argument(
        "--max-rows",
        type=int,
        default=50_000,
        help="triage train --max-rows for exports larger than it (0: read every export into memory)",
    )
    ap.add_argument("--encoder", default="none", help="triage train --encoder (default none: TF-IDF)")
    ap.add_argument("--no-incremental", action="store_true", help="pass --no-incremental to triage train")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/triage-bench-scale"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    tickets = read_source(args.source)
    pool = [t for t in tickets if not is_test(t[0])]
    test = args.workdir / "test.csv"
    if not test.exists():
        with open(test, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["Document", "Topic_group"])
            w.writerows(t for t in tickets if is_test(t[0]))
    print(f"source: {len(tickets)} tickets; pool {len(pool)}, test {len(tickets) - len(pool)} (never drawn)")
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} cores)\n")

    results = []
    for n in args.rows:
        started = time.perf_counter()
        data = generate(pool, n, args.workdir / f"synthetic-{n}-{args.seed}.csv", args.seed + n)
        gen_s = time.perf_counter() - started
        out = args.workdir / f"models-{n}-{int(time.time())}"
        cmd = triage(
            "train", "--data", str(data), "--mapping", str(MAPPING), "--out", str(out),
            "--encoder", args.encoder, "--no-tracking", "--json", "--seed", str(args.seed),
        )  # fmt: skip
        sampled = bool(args.max_rows) and n > args.max_rows
        if sampled:
            cmd += ["--max-rows", str(args.max_rows)]
            cmd += ["--no-incremental"] if args.no_incremental else []
        wall, peak, stdout = run_timed(cmd, args.workdir / f"train-{n}.log")
        report = json.loads(stdout[stdout.index("{") :])
        team = report["heads"]["team"]
        bundle = next(p for p in sorted(out.iterdir()) if p.is_dir())
        _, _, ev = run_timed(
            triage(
                "evaluate", "--bundle", str(bundle), "--data", str(test), "--mapping", str(MAPPING), "--json"
            ),
            args.workdir / f"evaluate-{n}.log",
        )
        test_f1 = json.loads(ev[ev.index("{") :])["heads"]["team"]["metrics"]["macro_f1"]
        row = {
            "rows": n,
            "max_rows": args.max_rows if sampled else None,
            "generate_s": round(gen_s, 1),
            "train_s": round(wall, 1),
            "peak_rss_mb": round(peak),
            "chosen": team["chosen"],
            "candidates_selection": {k: round(v, 4) for k, v in team["candidates"].items()},
            "holdout_macro_f1": round(team["metrics"]["macro_f1"], 4),
            "test_macro_f1": round(test_f1, 4),
            "load_after": round(os.getloadavg()[0], 1),
        }
        results.append(row)
        print(json.dumps(row), flush=True)

    print(
        "\n| rows | sample (--max-rows) | train wall | peak RSS | chosen | macro-F1, unseen test tickets | macro-F1, report holdout (near-copies leak) |"
    )
    print("|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['max_rows'] or 'all in memory'} | {r['train_s'] / 60:.1f} min | "
            f"{r['peak_rss_mb'] / 1024:.2f} GB | {r['chosen']} | {r['test_macro_f1']:.4f} | {r['holdout_macro_f1']:.4f} |"
        )
    print("\nper-candidate selection macro-F1:")
    for r in results:
        print(f"  {r['rows']:,}: {r['candidates_selection']}")


if __name__ == "__main__":
    main()
