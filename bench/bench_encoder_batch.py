"""Does batching encoder calls pay? CPU per text of the int8 MiniLM at batch sizes 1, 2, 4, 8.

The question behind it: should a gunicorn worker gather the texts of its concurrent
request threads into one encoder call (micro-batching)? One intra-op thread, as
the workers run it (``OMP_NUM_THREADS=1``); real tickets of ``../shared/data`` in random
order when it is there (a batch pads to its longest text, as two concurrent requests
would), else typical ~60-word demo tickets; every text distinct; the reference is batch
size 1 in the same run. ``--graph`` picks the serving graph version.

    nice .venv/bin/python bench/bench_encoder_batch.py --texts 400 --graph 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from bench_service import demo_tickets, shared_intake_tickets, typical  # noqa: E402  (bench/: own folder)


def bench_texts(n: int) -> tuple[list[str], str]:
    """``n`` real tickets in random order (fixed seed), else the typical demo tickets."""
    import random

    from triage.text import model_text

    real = shared_intake_tickets()
    if real:
        picked = random.Random(0).sample(real, min(n, len(real)))
        return [model_text(t["subject"], t["body"]) for t in picked], "real tickets of ../shared/data"
    tickets = typical(demo_tickets())
    texts = [model_text(t["subject"], t["body"]) + f" ref {i}" for i, t in enumerate(tickets)]
    return (texts * (n // max(len(texts), 1) + 1))[:n], "typical ~60-word demo tickets"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=int, default=160)
    p.add_argument("--sizes", default="1,2,4,8")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the load moves)")
    p.add_argument("--graph", type=int, default=1, help="serving graph version (triage/onnx_encoder.py)")
    args = p.parse_args(argv)
    from triage.onnx_encoder import OnnxMiniLMEncoder

    encoder = OnnxMiniLMEncoder(threads=1, graph=args.graph)
    texts, source = bench_texts(args.texts)
    encoder.encode(texts[:8])  # load and warm
    sizes = [int(s) for s in args.sizes.split(",")]
    cpu = {b: 0.0 for b in sizes}
    for _ in range(args.rounds):
        for b in sizes:
            start = time.process_time()
            for i in range(0, len(texts), b):
                encoder.encode(texts[i : i + b])
            cpu[b] += time.process_time() - start
    load = open("/proc/loadavg").read().split()[0]
    print(
        f"\nint8 MiniLM graph {args.graph}, 1 thread, {len(texts)} {source} x {args.rounds} rounds, "
        f"load average {load}\n"
    )
    print("| batch size | CPU ms per text | vs batch 1 |")
    print("|---|---|---|")
    per = {b: 1000 * cpu[b] / (len(texts) * args.rounds) for b in sizes}
    for b in sizes:
        print(f"| {b} | {per[b]:.2f} | {per[b] / per[sizes[0]]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
