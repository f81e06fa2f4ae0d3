"""Approximate nearest neighbours for ticket vectors: which library, and does it meet the targets?

Synthetic 384-d unit vectors shaped like sentence embeddings (not uniform noise,
which is both unrealistic and the hardest case for a graph index): topics are drawn
from a low-rank subspace (real embeddings are anisotropic), topic sizes follow a
power law (a few huge topics, "password reset", and a long tail), and each ticket
is its topic plus noise, so a ticket's nearest neighbours sit at cosine ~0.6-0.9 as
MiniLM neighbours do. Queries are fresh tickets from the same distribution.

For each size, exact top-10 with numpy (one thread, as a serving worker runs it) is
the reference *and* the ground truth; each library is then timed on the same queries,
one query at a time on one thread (intake asks for one ticket at a time; builds
use every core, as a process building its index at start does):

    nice .venv/bin/python bench/bench_ann.py                      # 100k and 1M
    nice .venv/bin/python bench/bench_ann.py --sizes 100000 --queries 200

Reports build time, p50/p99 query latency, recall@10 against exact, and memory.
Targets (issue 13): recall@10 >= 0.95 and p99 <= 5 ms at 1M.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # a serving worker's setting; fair to every library

import numpy as np  # noqa: E402

DIM = 384


def synthetic(n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``n`` stored vectors and ``queries`` fresh ones, L2-normalised float32."""
    rng = np.random.default_rng(seed)
    topics = max(50, n // 200)
    basis = rng.standard_normal((64, DIM)).astype(np.float32)  # the low-rank "meaning" space
    centres = rng.standard_normal((topics, 64)).astype(np.float32) @ basis
    centres += (
        0.35
        * np.linalg.norm(centres, axis=1, keepdims=True)
        / np.sqrt(DIM)
        * rng.standard_normal((topics, DIM)).astype(np.float32)
    )
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, topics + 1) ** 0.8  # Zipf-like topic popularity
    weights /= weights.sum()

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, DIM), dtype=np.float32)
        for start in range(0, m, 100_000):  # chunks keep the temporaries small at 1M
            k = min(100_000, m - start)
            pick = rng.choice(topics, size=k, p=weights)
            noise = rng.standard_normal((k, DIM)).astype(np.float32)
            # per-ticket spread: some tickets are near-copies of their topic, some loose
            spread = rng.uniform(0.018, 0.036, size=(k, 1)).astype(np.float32)
            block = centres[pick] + spread * noise
            out[start : start + k] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out

    return draw(n), draw(queries)


def exact_topk(data: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = data @ q
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def recall(found: list[np.ndarray], truth: list[np.ndarray], k: int) -> float:
    return float(
        np.mean([len(set(map(int, f[:k])) & set(map(int, t[:k]))) / k for f, t in zip(found, truth)])
    )


def timed_queries(search, queries: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(np.asarray(search(q)))
        times.append(time.perf_counter() - t0)
    return found, times


# ------------------------------------------------------------------ libraries
def build_usearch(data: np.ndarray, dtype: str):
    from usearch.index import Index

    index = Index(
        ndim=DIM, metric="cos", dtype=dtype, connectivity=16, expansion_add=128, expansion_search=128
    )
    index.add(np.arange(len(data), dtype=np.uint64), data, threads=0)  # build on all cores

    def search(q):
        return index.search(q, 10, threads=1).keys

    return search, index.memory_usage / 2**20


def build_faiss_hnsw(data: np.ndarray):
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # build on all cores
    index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 128
    index.add(data)
    index.hnsw.efSearch = 128
    faiss.omp_set_num_threads(1)  # query on one, as a serving worker does

    def search(q):
        return index.search(q.reshape(1, -1), 10)[1][0]

    return search, None


def build_faiss_ivf(data: np.ndarray):
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    lists = int(4 * np.sqrt(len(data)))
    quantizer = faiss.IndexFlatIP(DIM)
    index = faiss.IndexIVFFlat(quantizer, DIM, lists, faiss.METRIC_INNER_PRODUCT)
    sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 40 * lists), replace=False)]
    index.train(sample)
    index.add(data)
    index.nprobe = 16
    faiss.omp_set_num_threads(1)

    def search(q):
        return index.search(q.reshape(1, -1), 10)[1][0]

    return search, None


def build_hnswlib(data: np.ndarray):
    import hnswlib

    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=len(data), ef_construction=128, M=16)
    index.add_items(data, np.arange(len(data)))
    index.set_num_threads(1)
    index.set_ef(128)

    def search(q):
        return index.knn_query(q, k=10)[0][0]

    return search, None


def build_project(data: np.ndarray):
    """The project's own wrapper (triage.ann.VectorIndex), as intake uses it."""
    from triage.ann import VectorIndex

    index = VectorIndex(DIM, exact_below=0)
    index.add(np.arange(len(data)), data)

    def search(q):
        return [i for i, _ in index.search(q, 10)]

    return search, None


LIBRARIES = {
    "usearch HNSW f16 = triage.ann.VectorIndex": build_project,
    "usearch HNSW f32": lambda d: build_usearch(d, "f32"),
    "faiss HNSWFlat": build_faiss_hnsw,
    "faiss IVFFlat nprobe16": build_faiss_ivf,
    "hnswlib": build_hnswlib,
}


def run(n: int, n_queries: int, only: list[str] | None) -> None:
    t0 = time.perf_counter()
    data, queries = synthetic(n, n_queries)
    print(
        f"\n## {n:,} vectors x {DIM} d, {n_queries} queries (generated in {time.perf_counter() - t0:.0f} s)"
    )
    nn = np.array([np.sort(data @ q)[-2] for q in queries[:50]])
    print(
        f"nearest-neighbour cosine of the queries: median {np.median(nn):.2f}, "
        f"p10 {np.percentile(nn, 10):.2f}, p90 {np.percentile(nn, 90):.2f}"
    )
    truth, times = timed_queries(lambda q: exact_topk(data, q, 10), queries)
    p50, p99 = percentiles(times)
    print("| search | build s | p50 ms | p99 ms | recall@10 | index MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| exact numpy (reference) | 0 | {p50:.2f} | {p99:.2f} | 1.000 | {data.nbytes / 2**20:.0f} |",
        flush=True,
    )
    names = [n for n in LIBRARIES if not only or any(o.lower() in n.lower() for o in only)]
    if only:  # in the order asked: the cheapest build first when time is short
        names.sort(key=lambda n: min(i for i, o in enumerate(only) if o.lower() in n.lower()))
    for name in names:
        build = LIBRARIES[name]
        try:
            t0 = time.perf_counter()
            search, mib = build(data)
            built = time.perf_counter() - t0
        except ImportError as exc:
            print(f"| {name} | not installed ({exc.name}) | | | | |")
            continue
        search(queries[0])  # warm
        found, times = timed_queries(search, queries)
        p50, p99 = percentiles(times)
        print(
            f"| {name} | {built:.0f} | {p50:.2f} | {p99:.2f} | "
            f"{recall(found, truth, 10):.3f} | {'' if mib is None else f'{mib:.0f}'} |",
            flush=True,
        )
        del search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--only", nargs="*", help="run only libraries whose name contains one of these")
    args = ap.parse_args()
    for n in args.sizes:
        run(n, args.queries, args.only)


if __name__ == "__main__":
    main()
