"""Does intake cost grow with the number of open tickets? Index (ours) beside the old scan.

For each size, a fresh SQLite (file, WAL) store is bulk-loaded with that many open
tickets and their 384-d vectors (clustered like sentence embeddings, spread over the
last 7 days: the duplicate window; ``--recent`` of them in the last 30 minutes, burst
detection's window, whose size follows the arrival rate rather than the backlog), then ``--intake`` new tickets go through
``triage.store.intake.intake`` one transaction each, with duplicate and burst
detection on. Two ways of finding duplicate candidates, in the same run on the
same store:

* ``index`` — what intake does now: the process's ``triage.ann.VectorIndex``
  (exact below 20 k vectors, faiss IVF above), loaded in the background and
  caught up from the database;
* ``scan`` (reference) — the previous code: read every open ticket's vector in the
  window and score them all (``--scan-intake`` tickets only: seconds each at 200 k).

The index rows start from a fresh engine (a fresh process's view): its first intake
answers at once (it scans what the background load has not read yet), "index ready"
is when the load and the graph build are done, and the p50/p99 are the intakes after.
No model: a stand-in encoder hands out precomputed vectors, so the figures are the
store + search cost (the encoder's ~5-15 ms is the same at any size). The stored
tickets are bulk-inserted by SQL, not taken in one by one.

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

from triage import ann  # noqa: E402
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


def scan_nearest(session, vector, encoder, since, at, exclude, floor=None):
    """The previous ``offer``: every open ticket of the window, read and scored."""
    return [
        (i, v, r, t)
        for i, v, r, t, _ in similar._recent(session, encoder, since, exclude)
        if v.size == np.size(vector)
    ]


def load(store: Store, vectors: np.ndarray, recent: int, chunk: int = 5000) -> float:
    """Bulk-insert the open tickets: ``recent`` of them in the last 30 minutes (the burst
    window: its size follows the arrival rate, the same at any backlog), the rest older."""
    start = time.perf_counter()
    name = similar.encoder_name(FixedEncoder(vectors))
    n = len(vectors)
    rng = np.random.default_rng(1)
    ages = rng.uniform(3600, 7 * 86400 - 3600, n)
    ages[rng.choice(n, min(recent, n), replace=False)] = rng.uniform(0, 1800, min(recent, n))
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
    return f"{np.percentile(a, 50):,.1f} | {np.percentile(a, 99):,.1f}"


def wait_built(store: Store, timeout: float) -> float:
    """Seconds until this process's index is loaded and its graph (if any) built."""
    t0 = time.perf_counter()
    for per_encoder in similar._INDEXES.get(store.engine, {}).values():
        per_encoder.done.wait(timeout)
        per_encoder.index.wait(max(0.0, timeout - (time.perf_counter() - t0)))
    return time.perf_counter() - t0


def measure(size: int, args) -> None:
    stored, fresh = synthetic(size, args.scan_intake + args.intake, seed=size)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url)
        store.upgrade()
        loaded = load(store, stored, args.recent)
        print(f"<!-- {size:,} open tickets bulk-loaded by SQL in {loaded:.0f} s -->", flush=True)
        del stored
        if args.scan_intake:
            original = similar._nearest
            similar._nearest = scan_nearest
            try:
                scan = run_intake(store, FixedEncoder(fresh[: args.scan_intake]), args.scan_intake, "scan")
            finally:
                similar._nearest = original
            print(f"| {size:,} | scan (reference) | {len(scan)} | - | - | {ms(scan)} |", flush=True)
        store.dispose()
        store = Store(url)  # a fresh process's view: no index yet
        encoder = FixedEncoder(fresh[args.scan_intake :])
        first = run_intake(store, encoder, 1, "first")[0]  # starts the background load, scans meanwhile
        built = first + wait_built(store, args.timeout)
        indexed = run_intake(store, encoder, args.intake - 1, "index")
        print(
            f"| {size:,} | index (ours) | {len(indexed)} | {first * 1000:,.0f} | {built:.1f} | {ms(indexed)} |",
            flush=True,
        )
        store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 200_000], help="open tickets stored")
    ap.add_argument("--intake", type=int, default=200, help="new tickets taken in with the index, per size")
    ap.add_argument(
        "--scan-intake",
        type=int,
        default=5,
        help="new tickets taken in with the old full scan, per size (the reference: seconds each at 200k)",
    )
    ap.add_argument(
        "--recent",
        type=int,
        default=100,
        help="stored tickets in the last 30 minutes (burst detection's window), the same at every size",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the index build")
    ap.add_argument("--tmp", help="folder for the bench databases (default: the system's temp folder)")
    args = ap.parse_args()
    print(
        f"<!-- load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"index exact below {ann.EXACT_BELOW:,}, faiss IVF fp16 above ({ann.PER_LIST}/list, nprobe {ann.NPROBE}) -->"
    )
    print(
        "| open tickets | method | intakes | first intake ms (index loading) | index ready s "
        "| intake p50 ms | intake p99 ms |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        measure(size, args)


if __name__ == "__main__":
    main()
