"""CPU per intake text of the int8 MiniLM encoder: the round-4 session beside this round's graphs.

One text per call on one ONNX Runtime thread, as a gunicorn worker encodes an intake
(``OMP_NUM_THREADS=1``). The texts are real tickets of ``../shared/data`` (the intake
bench's list, bench/bench_service.py; median ~38 tokens), the same texts for every
configuration, interleaved in blocks so a change of load hits all of them alike:

* ``round 4``: the session as it was: the quantised graph as exported, every ONNX Runtime
  fusion, ``encode_batch`` and the batch path's pooling for one text (the reference);
* ``graph 1``: this round's serving graph (attention as one MultiHeadAttention node),
  the one-text path; the same vectors to the last bit (the table's max |diff| says so);
* ``graph 2``: graph 1 without ONNX Runtime's SkipLayerNormalization fusion (a new
  encoder version: the vectors move by float noise plus int8 steps);
* ``torch`` (``--torch``): sentence-transformers on one thread, for scale.

CPU ms per text is the process's CPU time over the texts (robust to other processes
more than wall time); texts/s per core is 1000 / that. Nothing is written.

    nice .venv/bin/python bench/bench_encoder_cpu.py              # 400 texts x 8 rounds
    nice .venv/bin/python bench/bench_encoder_cpu.py --texts 200 --rounds 4 --torch
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench_service import shared_intake_tickets  # noqa: E402  (bench/: the script's own folder)


def round4_encoder():
    """The int8 encoder as round 4 served it: plain graph, all fusions, the batch path."""
    import onnxruntime as ort

    from triage.onnx_encoder import OnnxMiniLMEncoder, ensure_model

    class Round4(OnnxMiniLMEncoder):
        def _load(self):
            if self._session is None:
                super()._load()
                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
                self._session = ort.InferenceSession(
                    str(ensure_model(True)), opts, providers=["CPUExecutionProvider"]
                )
                self._inputs = {i.name for i in self._session.get_inputs()}
                self._tokenize = self._tokenizer.encode_batch
            return self._session

        def _one(self, session, text):
            return self._batch(session, [text])

    return Round4(threads=1)


def configurations(with_torch: bool) -> dict:
    from triage.onnx_encoder import OnnxMiniLMEncoder

    out = {
        "round 4 (plain graph, all fusions)": round4_encoder(),
        "graph 1 (fused attention; same vectors)": OnnxMiniLMEncoder(threads=1, graph=1),
        "graph 2 (+ no SkipLayerNorm fusion)": OnnxMiniLMEncoder(threads=1, graph=2),
    }
    if with_torch:
        import torch

        from triage.encoder import MiniLMEncoder

        torch.set_num_threads(1)
        out["torch fp32 (sentence-transformers)"] = MiniLMEncoder()
    return out


def real_texts(n: int, seed: int = 0) -> list[str]:
    from triage.text import model_text

    tickets = shared_intake_tickets()
    if not tickets:
        raise SystemExit("../shared/data not found (bench/shared_data.py): this bench reads real tickets")
    picked = random.Random(seed).sample(tickets, min(n, len(tickets)))
    return [model_text(t["subject"], t["body"]) for t in picked]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=int, default=400)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--block", type=int, default=25, help="texts per configuration before switching")
    p.add_argument("--torch", action="store_true", help="add the torch encoder (~4x slower)")
    args = p.parse_args(argv)
    texts = real_texts(args.texts)
    encoders = configurations(args.torch)
    names = list(encoders)
    reference = names[0]
    vectors = {n: np.stack([e.encode([t])[0] for t in texts]) for n, e in encoders.items()}  # + warm-up
    tokens = [len(encoders[reference]._tokenizer.encode(t).ids) for t in texts]
    cpu = {n: [] for n in names}
    wall = {n: 0.0 for n in names}
    for r in range(args.rounds):
        for start in range(0, len(texts), args.block):
            block = texts[start : start + args.block]
            turn = names if (r + start // args.block) % 2 == 0 else names[::-1]
            for n in turn:
                encode = encoders[n].encode
                c0, w0 = time.process_time(), time.perf_counter()
                for t in block:
                    encode([t])
                cpu[n].append((time.process_time() - c0) / len(block))
                wall[n] += time.perf_counter() - w0
    load = open("/proc/loadavg").read().split()[0]
    print(
        f"\n{len(texts)} real tickets (median {statistics.median(tokens):.0f} tokens, mean "
        f"{statistics.mean(tokens):.0f}), one text per call, 1 thread, {args.rounds} interleaved rounds, "
        f"load average {load}\n"
    )
    print(
        "| configuration | CPU ms / text | texts/s per core (CPU) | texts/s (wall) "
        "| vs round 4 (paired median) | max abs diff to round 4 | min cosine to round 4 |"
    )
    print("|---|---|---|---|---|---|---|")
    ref = vectors[reference]
    for n in names:
        ms = 1000 * statistics.mean(cpu[n])
        ratio = statistics.median(a / b for a, b in zip(cpu[n], cpu[reference]))
        diff = float(np.abs(vectors[n] - ref).max())
        cos = float((vectors[n] * ref).sum(axis=1).min())
        rate = len(texts) * args.rounds / wall[n]
        print(f"| {n} | {ms:.2f} | {1000 / ms:.0f} | {rate:.0f} | {ratio:.3f} | {diff:.2g} | {cos:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
