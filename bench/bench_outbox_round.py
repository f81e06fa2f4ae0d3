"""Instructions per outbox delivery round, counted by callgrind: the outbox thread's own work
(claim, render, send to the mail folder, outcome) for a round of ``--per`` notices, for this tree
and (``--before``) another checkout, on SQLite or PostgreSQL (client side only).

Instruction counts do not move with the machine's load, where the thread CPU of a round moved
±30 % run to run on the shared machine. Each figure is two runs under ``valgrind
--tool=callgrind`` of a child that queues ``--queue`` ``received`` notices by ``intake_many`` and
then runs one warm round and R rounds of ``outbound.deliver(limit=per)``: (instructions of the run
with R rounds − of the run with 0) / R. Needs ``valgrind`` on the PATH; ~1–3 minutes a figure.

    nice .venv/bin/python bench/bench_outbox_round.py --before /tmp/before               # SQLite
    nice .venv/bin/python bench/bench_outbox_round.py --before /tmp/before --database postgresql+psycopg://…/test_x
    git archive <commit> triage triage_cli service bench | tar -x -C /tmp/before          # the "before"
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()


def _child(args) -> None:
    """Runs inside valgrind with the tree first on sys.path: queue, warm round, R rounds."""
    sys.path[:0] = [args.tree, str(Path(args.tree) / "bench")]
    import bench_outbox as bo  # the tree's own helpers (store, intake, mailer)

    from triage.store import outbound

    with tempfile.TemporaryDirectory() as tmp:
        store = bo._store(args, tmp, "round")
        bo._queue(store, args.queue)
        mailer = bo._mailer("folder", tmp, 0)
        gc.collect()
        gc.freeze()  # the set-up's objects out of the collector's walks: a full collection
        # over them landing in one run and not the other moved a figure by a million or more
        for _ in range(1 + args.rounds):
            outbound.deliver(store, mailer.send, domain="d.example", limit=args.per)
        mailer.close()
        bo._drop(store)


def _instructions(tree: Path, rounds: int, args) -> int:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, str(HERE), "--child", "--tree", str(tree), "--rounds", str(rounds),
        "--per", str(args.per), "--queue", str(args.queue),
    ]  # fmt: skip
    if args.database:
        command += ["--database", args.database]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    found = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({tree}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default=None, help="another checkout of the code, counted the same way")
    p.add_argument("--database", default=None, help="PostgreSQL URL (a throw-away schema); default SQLite")
    p.add_argument("--per", type=int, default=1, help="notices a round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--queue", type=int, default=0, help="notices queued (default: enough for every round)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tree", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.queue = args.queue or args.per * (args.rounds + 2)
    if args.child:
        _child(args)
        return 0
    trees = ([("before", Path(args.before).resolve())] if args.before else []) + [
        ("this tree", HERE.parents[1])
    ]
    store = "PostgreSQL" if args.database else "SQLite"
    print(f"{store}, rounds of {args.per} received notice(s), folder transport, {args.rounds} rounds counted")
    for name, tree in trees:
        per_round = (_instructions(tree, args.rounds, args) - _instructions(tree, 0, args)) / args.rounds
        print(
            f"{name:10} {per_round / 1e6:8.3f} M instructions a round, {per_round / args.per / 1e6:.3f} a notice"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
