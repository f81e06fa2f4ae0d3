"""Which part of intake costs more as the store fills? The store path (no HTTP, no mail loop),
group commit from 4 threads, and for each ``--step`` tickets stored: this process's CPU per ticket,
and the thread CPU per ticket spent inside each part (the encoder, the duplicate search and its
pieces: catch-up, index query, burst window, scoring; the write; each SQL statement). A part
whose figure climbs from chunk to chunk is one whose work grows with the store.

    nice .venv/bin/python bench/bench_growth_parts.py --database sqlite -n 8000 --step 1000
    nice .venv/bin/python bench/bench_growth_parts.py --database postgresql -n 8000 --step 1000 \\
        --encoder minilm-onnx          # real vectors: candidates and bursts as a desk has them

Texts are the real tickets of ../shared/data in the export's order (bench_store --growth's), so
the encoder's line moves with their length (the 5,000-6,000 stretch is ~40 % longer): read the
search's lines for the store. One OpenMP thread, as a served worker (bench_store.py says why).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_store as bs  # noqa: E402
from bench_service import shared_intake_tickets  # noqa: E402
from sqlalchemy import event  # noqa: E402

from triage import ann  # noqa: E402
from triage.encoder import load_encoder  # noqa: E402
from triage.store import intake as intake_mod  # noqa: E402
from triage.store import similar  # noqa: E402
from triage.store.intake import intake_grouped  # noqa: E402

SPENT: collections.Counter = collections.Counter()
CALLS: collections.Counter = collections.Counter()
LOCK = threading.Lock()
PARTS = [  # (owner, function, label)
    (intake_mod, "assess", "encoder + heads (assess)"),
    (similar, "search", "duplicate search (similar.search)"),
    (similar._OpenTickets, "catch_up", "  catch-up"),
    (ann.VectorIndex, "search", "  index query"),
    (similar, "_burst", "  burst"),
    (similar._Window, "near", "    window.near"),
    (similar, "detect_burst", "    detect_burst"),
    (similar, "find_duplicates", "  find_duplicates"),
    (intake_mod, "write", "write"),
]


def timed(owner, name: str, label: str) -> None:
    """Wrap ``owner.name`` to add its thread CPU to SPENT[label]."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent = time.thread_time() - start
            with LOCK:
                SPENT[label] += spent
                CALLS[label] += 1

    setattr(owner, name, wrapper)


def count_statements(engine) -> None:
    """Thread CPU per SQL statement (SQLite runs in the caller's thread: its CPU is in there)."""
    local = threading.local()

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, params, context, many):
        local.start = time.thread_time()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, params, context, many):
        spent = time.thread_time() - getattr(local, "start", time.thread_time())
        key = "SQL " + " ".join(statement.split())[:90]
        with LOCK:
            SPENT[key] += spent
            CALLS[key] += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("-n", type=int, default=8000)
    p.add_argument("--step", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--encoder", default="hashing", help="hashing (no weights), minilm-onnx, minilm")
    p.add_argument("--top", type=int, default=14, help="SQL statements listed (those that grew most)")
    args = p.parse_args()
    rules, triager, encoder = bs.RuleSet.load(), bs.StandInTriager(), load_encoder(args.encoder)
    texts = shared_intake_tickets(limit=args.n) or [bs._payload(i) for i in range(args.n)]
    for owner, name, label in PARTS:
        timed(owner, name, label)

    def work(store, ids) -> None:
        for i in ids:
            t = texts[i % len(texts)]
            payload = {
                "subject": t["subject"],
                "body": f"{t['body']} ref {i}",
                "requester": f"user{i % 97}@example.org",
            }
            intake_grouped(
                store,
                payload,
                idempotency_key=f"parts-{i}",
                actor="bench",
                triager=triager,
                ruleset=rules,
                encoder=encoder,
                now=datetime.now(timezone.utc),
            )

    chunks = []
    with tempfile.TemporaryDirectory() as tmp:
        store, cleanup = bs.open_store(args.database, Path(tmp))
        try:
            count_statements(store.engine)
            for lo in range(0, args.n, args.step):
                SPENT.clear()
                CALLS.clear()
                cpu = time.process_time()
                threads = [
                    threading.Thread(target=work, args=(store, range(lo + c, lo + args.step, args.clients)))
                    for c in range(args.clients)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                chunks.append(((time.process_time() - cpu) * 1000 / args.step, dict(SPENT)))
                print(
                    f"{lo + args.step:>6} stored: {chunks[-1][0]:.2f} ms of process CPU per ticket",
                    flush=True,
                )
        finally:
            cleanup()
    print(
        f"\nthread CPU ms per ticket inside each part, per {args.step} stored ({args.database}, {args.encoder}; load average {os.getloadavg()[0]:.1f})"
    )
    print("  " + " ".join(f"{(i + 1) * args.step:>6}" for i in range(len(chunks))) + "  part")
    statements = sorted(
        {k for _, spent in chunks for k in spent if k.startswith("SQL ")},
        key=lambda k: -(chunks[-1][1].get(k, 0) - chunks[0][1].get(k, 0)),
    )[: args.top]
    for label in [label for _, _, label in PARTS] + statements:
        print(
            "  "
            + " ".join(f"{spent.get(label, 0) * 1000 / args.step:>6.3f}" for _, spent in chunks)
            + f"  {label}"
        )


if __name__ == "__main__":
    main()
