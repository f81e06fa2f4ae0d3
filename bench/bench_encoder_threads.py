"""ONNX Runtime intra-op threads per gunicorn worker: what serving should pin (issue 15).

Emulates ``triage serve``'s default shape without HTTP: ``--workers`` processes, each
with one int8 MiniLM ONNX session shared by ``--threads`` request threads (gthread),
every thread encoding one ~60-word ticket at a time for ``--seconds``. Run once per
intra-op setting (1 = pinned, as ``service/gunicorn_conf.py`` does through
``OMP_NUM_THREADS=1``; 0 = ONNX Runtime's default, one thread per core in every
worker). Prints texts/s, per-call p50/p99/max and CPU ms per text for each setting,
side by side in one run:

    nice .venv/bin/python bench/bench_encoder_threads.py --seconds 15
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _worker(intra: int, threads: int, seconds: float, texts: list[str], out, graph: int = 1) -> None:
    from triage.onnx_encoder import OnnxMiniLMEncoder

    encoder = OnnxMiniLMEncoder(threads=intra, graph=graph)
    encoder.encode(texts[:2])  # load + warm up
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop(offset: int) -> None:
        mine, i = [], offset
        while time.monotonic() < stop:
            start = time.perf_counter()
            encoder.encode([texts[i % len(texts)]])
            mine.append((time.perf_counter() - start) * 1000)
            i += threads
        with lock:
            latencies.extend(mine)

    cpu = time.process_time()
    pool = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, time.process_time() - cpu))


def measure(intra: int, workers: int, threads: int, seconds: float, texts: list[str], graph: int = 1) -> dict:
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker, as gunicorn's fork-before-load
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(intra, threads, seconds, texts, queue, graph))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r, _ in results for x in r)
    cpu = sum(c for _, c in results)
    return {
        "intra": intra,
        "n": len(lat),
        "rate": len(lat) / seconds,
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, int(0.99 * (len(lat) - 1)))],
        "max": lat[-1],
        "cpu": 1000 * cpu / max(1, len(lat)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="processes, like gunicorn workers")
    p.add_argument("--threads", type=int, default=2, help="request threads per worker (gthread)")
    p.add_argument("--seconds", type=float, default=15, help="duration of each measurement")
    p.add_argument("--intra", default="1,2,0", help="intra-op thread settings to compare (0 = ORT default)")
    p.add_argument(
        "--graph", type=int, default=1, help="serving graph version (triage/onnx_encoder.py GRAPHS)"
    )
    args = p.parse_args()
    from bench_service import demo_tickets, typical

    texts = [f"{t['subject']}\n{t['body']}" for t in typical(demo_tickets())]
    print(
        f"{args.workers} workers x {args.threads} threads, {args.seconds:.0f} s each, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| intra-op threads | calls | texts/s | p50 ms | p99 ms | max ms | CPU ms/text |")
    print("|---|---|---|---|---|---|---|")
    for intra in [int(x) for x in args.intra.split(",")]:
        r = measure(intra, args.workers, args.threads, args.seconds, texts, args.graph)
        name = f"{intra}" + (" (ORT default: all cores)" if intra == 0 else "")
        print(
            f"| {name} | {r['n']} | {r['rate']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
            f"{r['cpu']:.2f} |",
            flush=True,
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
