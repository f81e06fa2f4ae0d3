"""``GET /v1/kb/suggest`` latency over HTTP (gunicorn), beside the same run's ``/livez`` floor.

    nice .venv/bin/python bench/bench_suggest.py [-n 400] [--clients 1,2] [--kb-limit 0]

Issue 15's target with the default encoder (int8 ONNX MiniLM): suggest p99 <= 15 ms.
This is the suggest rows of ``bench/bench_service.py`` alone (same server start, same
client, same typed-prefix queries, each distinct so the vector memo never hits),
without training-heavy classify and intake rows, plus an in-process split of a
suggest into encode and search, so a slow p99 can be placed. The served KB is the
shared 2,446-article one with ``KBConfig()`` settings; its first build is cached.
The demo bundle (TF-IDF heads, minilm-onnx recorded) is trained once and cached, as bench_service does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as in each service worker (STACK.md), before numpy loads

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_service import (  # noqa: E402
    CACHE,
    SHARED_KB,
    cpu_seconds,
    demo_tickets,
    ensure_bundle,
    kb_size,
    kb_subset,
    load_average,
    pct,
    print_table,
    row,
    run_clients,
    start_server,
    worker_pids,
)
from serving import free_port, kill_after, stop_server, wait_ready  # noqa: E402


def typed_queries(count: int, start: int = 0) -> list[str]:
    """Prefixes of real demo subjects as a customer types them, each made distinct."""
    tickets = demo_tickets()
    out = []
    for i in range(start, start + count):
        words = tickets[i % len(tickets)]["subject"].split() + [f"x{i}"]
        out.append(" ".join(words[: 2 + i % 5])[:60] + f" {i}")
    return out


def in_process(kb_path: str, n: int) -> dict:
    """Encode and search timed apart, in this process, with the serving encoder on one thread."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from triage.encoder import load_encoder
    from triage.kb import KnowledgeBase, kb_query, load_articles

    encoder = load_encoder({"kind": "minilm-onnx", "threads": 1})
    kb = KnowledgeBase.load_or_build(load_articles(kb_path), encoder, CACHE / "bench-suggest-kb")
    enc_ms, search_ms = [], []
    for q in typed_queries(n, start=10**6):
        text, _ = kb_query(None, q)
        t0 = time.perf_counter()
        vec = encoder.encode([text])[0]
        t1 = time.perf_counter()
        kb.search(text, vec, k=5)
        t2 = time.perf_counter()
        enc_ms.append(1000 * (t1 - t0))
        search_ms.append(1000 * (t2 - t1))
    return {
        "encode": (statistics.median(enc_ms), pct(enc_ms, 0.99)),
        "search": (statistics.median(search_ms), pct(search_ms, 0.99)),
        "uses_ann": kb.uses_ann,
        "articles": len(kb.articles),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", help="bundle folder (default: a minilm-onnx demo bundle, trained once)")
    p.add_argument("--kb", default=str(SHARED_KB), help="KB articles (default: the shared 2,446-article KB)")
    p.add_argument("--kb-limit", type=int, default=0, help="serve only the first N articles")
    p.add_argument("--encoder", default="minilm-onnx", help="serve with this encoder kind")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("-n", type=int, default=400, help="requests per measurement")
    p.add_argument("--clients", default="1,2", help="concurrent clients to measure with")
    p.add_argument("--timeout", type=float, default=1500, help="stop everything after this (s)")
    args = p.parse_args(argv)
    # suggest reads no classifier head: the quickest demo bundle (TF-IDF heads) will do
    bundle = ensure_bundle(
        SimpleNamespace(bundle=args.bundle, train_encoder="minilm-onnx", candidates="tfidf")
    )
    if args.kb_limit and Path(args.kb).is_file():
        args.kb = str(kb_subset(Path(args.kb), args.kb_limit))
    split = in_process(args.kb, 200)  # also builds (or loads) the KB index the server will load
    folder = Path(tempfile.mkdtemp(prefix="triage-bench-suggest-"))
    args.database_url = f"sqlite:///{folder / 'triage.db'}"
    # the bench is one caller sending far more than a person types: the per-caller limit is off
    os.environ["TRIAGE_RATELIMIT_ENABLED"] = "false"
    port = free_port()
    log_path = CACHE / f"bench-suggest-{port}.log"
    proc = start_server(args, bundle, port, log_path)
    killer = kill_after(proc, args.timeout)
    rows = []
    try:
        wait_ready(port, proc, args.timeout - 120)
        pids = worker_pids(proc.pid)
        load_before = load_average()
        warm = [("GET", "/v1/kb/suggest?" + urlencode({"q": q}), None) for q in typed_queries(40)]
        run_clients(port, 2, warm)
        start = 100
        for c in [int(x) for x in args.clients.split(",")]:
            for name, reqs in (
                (f"GET /livez (floor), {c} client(s)", [("GET", "/livez", None)] * args.n),
                (
                    f"GET /v1/kb/suggest, {c} client(s)",
                    [
                        ("GET", "/v1/kb/suggest?" + urlencode({"q": q}), None)
                        for q in typed_queries(args.n, start)
                    ],
                ),
            ):
                before = cpu_seconds(pids)
                lat, wall = run_clients(port, c, reqs)
                target = "p99<=15" if "suggest" in name else ""
                rows.append(row(name, lat, wall, len(lat), target, cpu_seconds(pids) - before))
            start += args.n
        meta = (
            f"bundle {bundle.name}, encoder {args.encoder}, {args.workers} gunicorn workers, "
            f"KB {Path(args.kb).name} ({kb_size(args.kb)} articles), {os.cpu_count()} CPUs, "
            f"load average {load_before} before / {load_average()} after"
        )
        print_table(rows, meta)
        print(
            f"\nin process ({split['articles']} articles, ANN pre-selection: {split['uses_ann']}), one thread: "
            f"encode p50 {split['encode'][0]:.2f} / p99 {split['encode'][1]:.2f} ms, "
            f"search p50 {split['search'][0]:.2f} / p99 {split['search'][1]:.2f} ms"
        )
    finally:
        stop_server(proc, killer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
