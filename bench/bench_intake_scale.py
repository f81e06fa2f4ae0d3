"""Does intake cost grow with the number of open tickets? Index (ours) beside the old scan.

For each size, a fresh SQLite (file, WAL) store is bulk-loaded with that many open
tickets and their 384-d vectors (clustered like sentence embeddings, spread over the
last 7 days: the duplicate window), then ``--intake`` new tickets go through
``triage.store.intake.intake`` one transaction each, with duplicate and burst
detection on. Two ways of finding duplicate candidates, in the same run on the
same store:

* ``index`` — what intake does now: the process's ``triage.ann.VectorIndex``
  (exact below 20 k vectors, usearch HNSW above), caught up from the database;
* ``scan`` (reference) — the previous code: read every open ticket's vector in the
  window and score them all.

No model: a stand-in encoder hands out precomputed vectors, so the figures are the
store + search cost (the encoder's ~5-15 ms is the same at any size). The index's
one-off build in a fresh process is reported separately.

    nice .venv/bin/python bench/bench_intake_scale.py                      # 1k and 200k
    nice .venv/bin/python bench/bench_intake_scale.py --sizes 1000 20000 --intake 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from sqlalchemy import insert  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_ann import synthetic  # noqa: E402

from triage.store import Store, similar  # noqa: E402
from triage.store.intake import intake  # noqa: E402
from triage.store.tables import TicketRow, TicketVector  # noqa: E402

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
ENCODER = "bench-fixed-384"


class FixedEncoder:
    """Hands out the next precomputed vector: the search, not the model, is measured."""

    dim = 384

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors, self.next = vectors, 0

    def reference(self) -> dict:
        return {"kind": ENCODER}

    def encode(self, texts):
        out = self.vectors[self.next : self.next + len(texts)]
        self.next += len(texts)
        return out


def scan_nearest(session, vector, encoder, since, at, exclude):
    """The previous ``offer``: every open ticket of the window, read and scored."""
    return [
        (i, v, r, t)
        for i, v, r, t, _ in similar._recent(session, encoder, since, exclude)
        if v.size == np.size(vector)
    ]


def load(store: Store, vectors: np.ndarray, chunk: int = 5000) -> float:
    start = time.perf_counter()
    name = similar.encoder_name(FixedEncoder(vectors))
    n = len(vectors)
    rng = np.random.default_rng(1)
    ages = rng.uniform(0, 7 * 86400 - 3600, n)
    with store.engine.begin() as conn:
        for lo in range(0, n, chunk):
            ids = range(lo + 1, min(n, lo + chunk) + 1)
            rows, vecs = [], []
            for i in ids:
                at = NOW - timedelta(seconds=float(ages[i - 1]))
                rows.append(
                    {
                        "id": i,
                        "subject": f"stored ticket {i}",
                        "body": "",
                        "channel": "api",
                        "requester": f"user{i % 5000}@example.org",
                        "status": "assigned" if i % 2 else "new",
                        "queue": "Net",
                        "team": "Net",
                        "extra": {},
                        "tags": [],
                        "escalation_level": 0,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
                vecs.append(
                    {
                        "ticket_id": i,
                        "encoder": name,
                        "dim": 384,
                        "vector": vectors[i - 1].tobytes(),
                        "created_at": at,
                    }
                )
            conn.execute(insert(TicketRow), rows)
            conn.execute(insert(TicketVector), vecs)
    return time.perf_counter() - start


def run_intake(store: Store, encoder: FixedEncoder, n: int, tag: str) -> list[float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        with store.session() as session:
            intake(
                session,
                {"subject": f"new ticket {i}", "body": "details", "requester": f"user{i % 5000}@example.org"},
                actor="bench",
                idempotency_key=f"{tag}-{i}",
                now=NOW + timedelta(seconds=i),
                encoder=encoder,
                auto_assign=False,
            )
        times.append(time.perf_counter() - t0)
    return times


def ms(times: list[float]) -> str:
    a = np.asarray(times) * 1000
    return f"{np.percentile(a, 50):.1f} | {np.percentile(a, 99):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 200_000])
    ap.add_argument("--intake", type=int, default=200, help="new tickets per method and size")
    args = ap.parse_args()
    print("| open tickets | method | index build s | intake p50 ms | intake p99 ms |")
    print("|---:|---|---:|---:|---:|")
    for size in args.sizes:
        stored, fresh = synthetic(size, 2 * args.intake, seed=size)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            store.upgrade()
            load(store, stored)
            del stored
            original = similar._nearest
            similar._nearest = scan_nearest
            try:
                scan = run_intake(store, FixedEncoder(fresh[: args.intake]), args.intake, "scan")
            finally:
                similar._nearest = original
            print(f"| {size:,} | scan (reference) | - | {ms(scan).replace(' | ', ' | ')} |", flush=True)
            encoder = FixedEncoder(fresh[args.intake :])
            t0 = time.perf_counter()  # the first intake of a process builds its index
            run_intake(store, encoder, 1, "build")
            built = time.perf_counter() - t0
            indexed = run_intake(store, encoder, args.intake - 1, "index")
            print(f"| {size:,} | index (ours) | {built:.1f} | {ms(indexed)} |", flush=True)
            store.dispose()


if __name__ == "__main__":
    main()
