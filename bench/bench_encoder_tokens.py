"""Where the int8 MiniLM encoder's CPU per request goes by text length, and what a shorter
window would save: the numbers to weigh before changing how texts are truncated.

One text per call on one ONNX Runtime thread, as a gunicorn worker encodes an intake or a
classify (``OMP_NUM_THREADS=1``), with the serving graph new bundles get:

1. **CPU per run by token count** (synthetic ids, min over repetitions): the fixed cost of a
   run (the 3-token row, the same-run floor) and the cost per token above it.
2. **Real tickets** (``../shared/data``'s intake texts, as bench/bench_service.py sends them;
   the demo corpus without it): their token counts, and the measured CPU per text with the
   encoder's window at 128 tokens (what serves today) and at shorter caps. Shorter caps give
   other vectors: their accuracy is ``bench/bench_encoders.py``'s to show, and the KB's
   chunks (~100 words, ~128 word pieces) are embedded by the same encoder.
3. **The KB query window** (``triage.kb.query_window``, 100 words): texts it cuts are
   embedded a second time by ``POST /v1/classify`` (the window's own vector); their share
   and what that second run costs.

Nothing is written.

    nice .venv/bin/python bench/bench_encoder_tokens.py
    nice .venv/bin/python bench/bench_encoder_tokens.py --texts 1000 --caps 128,96,64
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench_service import demo_tickets, shared_intake_tickets  # noqa: E402  (bench/: this folder)


def encoder(max_tokens: int = 128):
    from triage.onnx_encoder import LATEST_GRAPH, OnnxMiniLMEncoder

    enc = OnnxMiniLMEncoder(max_tokens=max_tokens, threads=1, graph=LATEST_GRAPH)
    enc._load()
    return enc


def per_length(enc, lengths: list[int], rounds: int) -> list[tuple[int, float]]:
    """CPU ms of one session run per token count (min over ``rounds`` blocks of 50 runs)."""
    session = enc._session
    out = []
    for n in lengths:
        ids = np.array([[101] + [2000] * (n - 2) + [102]], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feed = {k: v for k, v in feed.items() if k in enc._inputs}
        for _ in range(10):
            session.run(None, feed)
        best = float("inf")
        for _ in range(rounds):
            start = time.thread_time()
            for _ in range(50):
                session.run(None, feed)
            best = min(best, (time.thread_time() - start) * 1000 / 50)
        out.append((n, best))
    return out


def cpu_per_text(encoders: dict[int, object], texts: list[str], rounds: int) -> dict[int, float]:
    """Per encoder, the mean CPU ms of ``encode([text])`` over the texts: the minimum over
    ``rounds`` passes, the encoders taking turns in each (a change of load hits all alike)."""
    best = {cap: float("inf") for cap in encoders}
    for _ in range(rounds):
        for cap, enc in encoders.items():
            start = time.thread_time()
            for text in texts:
                enc.encode([text])  # type: ignore[attr-defined]
            best[cap] = min(best[cap], (time.thread_time() - start) * 1000 / len(texts))
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=600, help="real tickets to encode (part 2)")
    p.add_argument("--caps", default="128,96,64", help="encoder windows in tokens (part 2)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    from triage.kb import query_window
    from triage.text import model_text

    enc = encoder()
    print(f"load average {os.getloadavg()[0]:.2f}; one ONNX Runtime thread; graph {enc.graph}")
    print("\n| tokens | CPU ms per run | ms per token above the 3-token floor |")
    print("|---|---|---|")
    rows = per_length(enc, [3, 16, 24, 32, 48, 64, 96, 128], args.rounds)
    floor = rows[0][1]
    for n, ms in rows:
        print(f"| {n} | {ms:.3f} | {'' if n == 3 else f'{(ms - floor) / (n - 3):.4f}'} |")

    shared = shared_intake_tickets(args.texts)
    tickets, source = (
        (shared, "../shared/data intake tickets") if shared else (demo_tickets(), "demo tickets")
    )
    texts = [model_text(t["subject"], t["body"]) for t in tickets][: args.texts]
    counts = np.array([len(e.ids) for e in enc._tokenize(texts)])
    print(
        f"\n{len(texts)} {source}: tokens mean {counts.mean():.1f}, median {np.median(counts):.0f}, "
        f"p90 {np.percentile(counts, 90):.0f}, at the 128 cap {np.mean(counts >= 128):.1%}"
    )
    print("\n| window (tokens) | mean tokens | CPU ms per text (measured) | vs 128 |")
    print("|---|---|---|---|")
    caps = [int(c) for c in args.caps.split(",")]
    measured = cpu_per_text({cap: enc if cap == 128 else encoder(cap) for cap in caps}, texts, args.rounds)
    reference = measured.get(128) or measured[caps[0]]
    for cap in caps:
        ms = measured[cap]
        print(f"| {cap} | {np.minimum(counts, cap).mean():.1f} | {ms:.3f} | {ms / reference - 1:+.1%} |")

    cut = [w for w, was_cut in (query_window(t) for t in texts) if was_cut]
    extra = cpu_per_text({128: enc}, cut, args.rounds)[128] if cut else 0.0
    print(
        f"\nKB query window: {len(cut)} of {len(texts)} texts cut ({len(cut) / len(texts):.1%}); "
        f"classify embeds their window again at {extra:.3f} ms CPU each "
        f"(+{extra * len(cut) / len(texts):.3f} ms per classify on average)"
    )
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
