"""What a full garbage collection costs a loaded worker, with and without ``gc.freeze``.

Builds the service app in this process as a gunicorn worker does (TRIAGE_LOAD=sync, a
throw-away SQLite store), serves 50 ``POST /v1/classify?kb=0`` requests through the WSGI app,
then times generation-2 collections (thread CPU) before and after ``gc.collect(); gc.freeze()``
(what service/gunicorn_conf.py's post_worker_init does), and counts the collections of 2,000
more requests. A full collection is a stall of every request the worker is serving.

    .venv/bin/python bench/bench_gc_pause.py --bundle <bundle dir> --kb <KB jsonl>
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKET = {
    "subject": "VPN drops every hour",
    "body": "My VPN connection drops every hour since Monday, please help",
    "channel": "email",
    "customer_tier": "standard",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--kb", required=True)
    p.add_argument("-n", type=int, default=2000, help="requests whose collections are counted")
    args = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # as gunicorn_conf.py sets for each worker
    folder = tempfile.mkdtemp(prefix="triage-gc-")
    bundle = str(Path(args.bundle).resolve())
    os.environ.update(
        {
            "TRIAGE_API_KEYS": "bench-key:intake",
            "TRIAGE_KB_PATH": str(Path(args.kb).resolve()),
            "TRIAGE_DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "TRIAGE_LOAD": "sync",
            "TRIAGE_MAIL_INTERVAL": "0",
            "TRIAGE_BUNDLE": bundle,
            "TRIAGE_TRUSTED_BUNDLES": bundle,
            "TRIAGE_LOG_LEVEL": "WARNING",
            "TRIAGE_MAIL_DIR": f"{folder}/mail",
            "TRIAGE_RUN_DIR": f"{folder}/run",
            "TRIAGE_SECRET_KEY": "bench",
        }
    )
    sys.path.insert(0, str(ROOT))
    from service import create_app

    client = create_app({}).test_client()
    headers = {"Authorization": "Bearer bench-key"}

    def serve(n: int) -> None:
        for _ in range(n):
            r = client.post("/v1/classify?kb=0", json=TICKET, headers=headers)
            assert r.status_code == 200, r.data[:300]

    serve(50)
    print(f"load average {os.getloadavg()[0]:.2f}; objects tracked {len(gc.get_objects()):,}")
    for label in ("full collection", "full collection", "full collection"):
        print(f"{label}: {_gen2_ms():.1f} ms thread CPU")
    gc.collect()
    gc.freeze()
    print(f"after gc.freeze ({gc.get_freeze_count():,} objects frozen): {_gen2_ms():.1f} ms")
    starts: list[int] = []
    gc.callbacks.append(lambda phase, info: starts.append(info["generation"]) if phase == "start" else None)
    serve(args.n)
    print(f"{args.n} requests: collections by generation", {g: starts.count(g) for g in (0, 1, 2)})


def _gen2_ms() -> float:
    started = time.thread_time()
    gc.collect(2)
    return (time.thread_time() - started) * 1000


if __name__ == "__main__":
    main()
