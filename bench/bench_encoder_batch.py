"""Does batching encoder calls pay? CPU per text of the int8 MiniLM at batch sizes 1, 2, 4, 8.

The question behind it: should a gunicorn worker gather the texts of its concurrent
request threads into one encoder call (micro-batching)? One intra-op thread, as
the workers run it (``OMP_NUM_THREADS=1``); typical ~60-word demo tickets, every
text distinct; the reference is batch size 1 in the same run.

    nice .venv/bin/python bench/bench_encoder_batch.py --texts 160
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from bench_service import demo_tickets, typical  # noqa: E402  (bench/: the script's own folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=int, default=160)
    p.add_argument("--sizes", default="1,2,4,8")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the load moves)")
    args = p.parse_args(argv)
    from triage.onnx_encoder import OnnxMiniLMEncoder
    from triage.text import model_text

    encoder = OnnxMiniLMEncoder(threads=1)
    tickets = typical(demo_tickets())
    texts = [model_text(t["subject"], t["body"]) + f" ref {i}" for i, t in enumerate(tickets)]
    texts = (texts * (args.texts // max(len(texts), 1) + 1))[: args.texts]
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
    print(f"\nint8 MiniLM, 1 thread, {len(texts)} texts x {args.rounds} rounds, load average {load}\n")
    print("| batch size | CPU ms per text | vs batch 1 |")
    print("|---|---|---|")
    per = {b: 1000 * cpu[b] / (len(texts) * args.rounds) for b in sizes}
    for b in sizes:
        print(f"| {b} | {per[b]:.2f} | {per[b] / per[sizes[0]]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
