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
    nice .venv/bin/python bench/bench_ann.py --sizes 100000 --real 3000 --cache /tmp/ann

``--real N`` builds the set on real geometry instead: the int8 ONNX MiniLM vectors of
the first N shared tickets (read at run time from ../shared/data, never stored in the
repo), each stored vector a real one pulled part-way to a real neighbour plus noise.

Reports build time (wall and CPU: the CPU seconds do not depend on the machine's load),
the index's size (RSS growth where the library does not say), p50/p90/p99/p99.9 query
latency after a warm-up, and recall@10 against exact.
Targets (issue 13): recall@10 >= 0.95 and p99 <= 5 ms at 1M.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path

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
    scores = np.einsum("ij,j->i", data, q)  # one thread, as a serving worker scans
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def ground_truth(data: np.ndarray, queries: np.ndarray, k: int) -> list[np.ndarray]:
    """Exact top-k of every query, in blocks (one matrix product per block: fast and exact)."""
    truth = []
    for lo in range(0, len(queries), 128):
        scores = data @ queries[lo : lo + 128].T  # (n, block)
        for col in scores.T:
            top = np.argpartition(-col, k)[:k]
            truth.append(top[np.argsort(-col[top])])
    return truth


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000
    return {p: float(np.percentile(ms, float(p[1:]))) for p in ("p50", "p90", "p99", "p99.9")}


def recall(found: list[np.ndarray], truth: list[np.ndarray], k: int) -> float:
    return float(
        np.mean([len(set(map(int, f[:k])) & set(map(int, t[:k]))) / k for f, t in zip(found, truth)])
    )


def timed_queries(
    search, queries: np.ndarray, warm: int = 0
) -> tuple[list[np.ndarray], list[float], list[float]]:
    """One query at a time; the first ``warm`` (caches, page faults) are run but not timed.

    Returns the hits, each query's wall time, and its CPU time on this thread: on a
    shared machine the wall time's tail is other processes pre-empting this one, the
    CPU time is what the query itself costs (what an idle machine's wall time would be).
    """
    for q in queries[:warm]:
        search(q)
    found, times, cpu = [], [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.thread_time()
        found.append(np.asarray(search(q)))
        cpu.append(time.thread_time() - c0)
        times.append(time.perf_counter() - t0)
    return found, times, cpu


def rss_mib() -> float:
    """This process's resident memory now (Linux), to report what a build costs."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ------------------------------------------------------------------ libraries
# Each builder takes the data and returns a one-query search function. Builds use
# every core (a process building its index at start); searches use one thread.
def build_usearch(data: np.ndarray, dtype: str, m: int, ef_add: int, ef: int):
    from usearch.index import Index

    index = Index(
        ndim=DIM,
        metric="cos",
        dtype=dtype,
        connectivity=m,
        expansion_add=ef_add,
        expansion_search=ef,
    )
    index.add(np.arange(len(data), dtype=np.uint64), data, threads=cores())

    def search(q):
        return index.search(q, 10, threads=1).keys

    search.index = index  # type: ignore[attr-defined]  # kept alive with the function
    search.mib = index.memory_usage / 2**20  # type: ignore[attr-defined]
    return search


def build_faiss_hnsw(data: np.ndarray, m: int = 16, ef_add: int = 128, ef: int = 128):
    import faiss

    faiss.omp_set_num_threads(cores())
    index = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_add
    index.add(data)
    index.hnsw.efSearch = ef
    faiss.omp_set_num_threads(1)

    def search(q):
        return index.search(q.reshape(1, -1), 10)[1][0]

    search.index = index  # type: ignore[attr-defined]
    return search


def build_faiss_ivf(data: np.ndarray, kind: str = "flat", per_list: int = 500, nprobes=(8, 16, 32)):
    """IVF: k-means lists of about ``per_list`` vectors; each query scans the ``nprobe`` nearest
    lists. One build, one row per nprobe (``search.variants``)."""
    import faiss

    faiss.omp_set_num_threads(cores())
    lists = max(16, len(data) // per_list)
    quantizer = faiss.IndexFlatIP(DIM)
    if kind == "flat":
        index = faiss.IndexIVFFlat(quantizer, DIM, lists, faiss.METRIC_INNER_PRODUCT)
    else:
        qtype = {"sq8": faiss.ScalarQuantizer.QT_8bit, "fp16": faiss.ScalarQuantizer.QT_fp16}[kind]
        index = faiss.IndexIVFScalarQuantizer(quantizer, DIM, lists, qtype, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10  # k-means: 10 rounds on a 40-per-list sample is plenty for a shortlist
    sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 40 * lists), replace=False)]
    index.train(sample)
    index.add(data)
    faiss.omp_set_num_threads(1)

    def searcher(nprobe: int):
        params = faiss.SearchParametersIVF(nprobe=nprobe)

        def search(q):
            return index.search(q.reshape(1, -1), 10, params=params)[1][0]

        return search

    first = searcher(nprobes[0])
    first.index = index  # type: ignore[attr-defined]
    first.mib = (index.ntotal * (index.code_size + 8) + lists * DIM * 4) / 2**20  # type: ignore[attr-defined]
    first.variants = {f"nprobe {n}": searcher(n) for n in nprobes}  # type: ignore[attr-defined]
    return first


def build_hnswlib(data: np.ndarray):
    import hnswlib

    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=len(data), ef_construction=128, M=16)
    index.add_items(data, np.arange(len(data)), num_threads=cores())
    index.set_num_threads(1)
    index.set_ef(128)

    def search(q):
        return index.knn_query(q, k=10)[0][0]

    search.index = index  # type: ignore[attr-defined]
    return search


def build_project(data: np.ndarray):
    """The project's own wrapper (triage.ann.VectorIndex) with its defaults, as intake uses it."""
    from triage.ann import VectorIndex

    index = VectorIndex(DIM, exact_below=0, background=False)
    index.add(np.arange(len(data)), data)

    def search(q):
        return [i for i, _ in index.search(q, 10)]

    search.index = index  # type: ignore[attr-defined]
    return search


LIBRARIES = {
    "triage.ann.VectorIndex (defaults; builds on one thread, as a worker)": build_project,
    "usearch HNSW i8 M16 efc64 ef64": lambda d: build_usearch(d, "i8", 16, 64, 64),
    "usearch HNSW i8 M16 efc64 ef128": lambda d: build_usearch(d, "i8", 16, 64, 128),
    "usearch HNSW f16 M16 efc64 ef64": lambda d: build_usearch(d, "f16", 16, 64, 64),
    "usearch HNSW f16 M16 efc64 ef128": lambda d: build_usearch(d, "f16", 16, 64, 128),
    "usearch HNSW f16 M16 efc128 ef128 (last round)": lambda d: build_usearch(d, "f16", 16, 128, 128),
    "usearch HNSW i8 M8 efc40 ef64": lambda d: build_usearch(d, "i8", 8, 40, 64),
    "faiss HNSWFlat M16 efc64 ef64": lambda d: build_faiss_hnsw(d, 16, 64, 64),
    "faiss IVFFlat 500/list": lambda d: build_faiss_ivf(d, "flat", 500),
    "faiss IVF-SQ8 500/list": lambda d: build_faiss_ivf(d, "sq8", 500),
    "faiss IVF-fp16 500/list": lambda d: build_faiss_ivf(d, "fp16", 500),
    "faiss IVFFlat 250/list": lambda d: build_faiss_ivf(d, "flat", 250),
    "hnswlib M16 efc128 ef128": build_hnswlib,
}


TICKETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "it_tickets"
TICKETS_CSV = next(
    (
        p / "all_tickets_processed_improved_v3.csv"
        for p in (TICKETS, Path("/work/shared/data/it_tickets"))
        if (p / "all_tickets_processed_improved_v3.csv").exists()
    ),
    TICKETS / "all_tickets_processed_improved_v3.csv",
)


def real_embeddings(count: int, cache: str | None) -> np.ndarray:
    """int8 ONNX MiniLM vectors (what serving uses) of the first ``count`` shared tickets."""
    path = Path(cache) / f"minilm-{count}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path)
    import pandas as pd

    from triage.onnx_encoder import OnnxMiniLMEncoder

    texts = pd.read_csv(TICKETS_CSV, usecols=["Document"], nrows=count)["Document"].astype(str).tolist()
    vectors = _unit(np.asarray(OnnxMiniLMEncoder().encode(texts, progress=True), dtype=np.float32))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def from_real(real: np.ndarray, n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors on the real tickets' geometry: each is a real ticket, pulled part-way
    towards one of its 20 nearest real neighbours, plus a little noise (a paraphrase, a
    variant of the same problem). Keeps MiniLM's anisotropy and topic structure."""
    rng = np.random.default_rng(seed)
    sims = real @ real.T
    np.fill_diagonal(sims, -1)
    near = np.argsort(-sims, axis=1)[:, :20]

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, real.shape[1]), dtype=np.float32)
        for start in range(0, m, 100_000):
            k = min(100_000, m - start)
            base = rng.integers(0, len(real), k)
            other = near[base, rng.integers(0, 20, k)]
            pull = rng.uniform(0, 0.5, (k, 1)).astype(np.float32)
            noise = rng.standard_normal((k, real.shape[1])).astype(np.float32) * (
                0.15 / np.sqrt(real.shape[1])
            )
            out[start : start + k] = _unit(real[base] + pull * real[other] + noise)
        return out

    return draw(n), draw(queries)


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def dataset(n: int, n_queries: int, cache: str | None, real: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic set (or one on ``real`` tickets' embeddings), from ``cache`` when a
    previous run saved it there."""
    name = f"ann-{n}-{n_queries}" + (f"-real{real}" if real else "")
    if cache:
        path = Path(cache) / f"{name}.npz"
        if path.exists():
            with np.load(path) as saved:
                return saved["data"], saved["queries"]
    if real:
        data, queries = from_real(real_embeddings(real, cache), n, n_queries)
    else:
        data, queries = synthetic(n, n_queries)
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        np.savez(path, data=data, queries=queries)
    return data, queries


def run(
    n: int, n_queries: int, exact_queries: int, only: list[str] | None, cache: str | None, real: int = 0
) -> None:
    t0 = time.perf_counter()
    data, queries = dataset(n, n_queries, cache, real)
    kind = f"built on {real:,} real tickets' MiniLM vectors" if real else "synthetic"
    print(
        f"\n## {n:,} vectors x {DIM} d ({kind}), {n_queries} queries, {exact_queries} timed for exact "
        f"(data ready in {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f})"
    )
    t0 = time.perf_counter()
    truth = ground_truth(data, queries, 10)
    nn = np.array([float(data[t[0]] @ q) for t, q in zip(truth[:200], queries)])
    print(
        f"nearest-neighbour cosine of the queries: median {np.median(nn):.2f}, "
        f"p10 {np.percentile(nn, 10):.2f}, p90 {np.percentile(nn, 90):.2f} "
        f"(ground truth in {time.perf_counter() - t0:.0f} s)"
    )
    # the reference: exact scan, one query at a time on one thread (fewer: it is slow at 1M)
    _, times, spent = timed_queries(lambda q: exact_topk(data, q, 10), queries[:exact_queries], warm=3)
    print(
        "| search | build s | build CPU s | index MiB | p50 ms | p90 ms | p99 ms | p99.9 ms "
        "| CPU p50 ms | CPU p99 ms | recall@10 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    row(
        "exact numpy scan (reference)", 0, 0, data.nbytes / 2**20, percentiles(times), percentiles(spent), 1.0
    )
    names = [n for n in LIBRARIES if not only or any(o.lower() in n.lower() for o in only)]
    if only:  # in the order asked: the cheapest build first when time is short
        names.sort(key=lambda n: min(i for i, o in enumerate(only) if o.lower() in n.lower()))
    for name in names:
        build = LIBRARIES[name]
        before = rss_mib()
        try:
            t0, cpu0 = time.perf_counter(), time.process_time()
            search = build(data)
            built, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        except ImportError as exc:
            print(f"| {name} | not installed ({exc.name}) | | | | | | | | | |", flush=True)
            continue
        grown = getattr(search, "mib", rss_mib() - before)  # the index's own size when it says
        for variant, searcher in getattr(search, "variants", {"": search}).items():
            found, times, spent = timed_queries(searcher, queries, warm=min(200, len(queries)))
            label = f"{name} {variant}".strip()
            row(label, built, cpu, grown, percentiles(times), percentiles(spent), recall(found, truth, 10))
        del search, found
        gc.collect()


def row(
    name: str, built: float, cpu: float, mib: float, p: dict[str, float], c: dict[str, float], rec: float
) -> None:
    """One table row; the CPU columns (build: all threads; query: its own thread) do not
    depend on the machine's load, the wall-clock ones do."""
    print(
        f"| {name} | {built:.0f} | {cpu:.0f} | {mib:,.0f} | {p['p50']:.2f} | {p['p90']:.2f} | {p['p99']:.2f} "
        f"| {p['p99.9']:.2f} | {c['p50']:.2f} | {c['p99']:.2f} | {rec:.3f} |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="vectors stored")
    ap.add_argument(
        "--queries", type=int, default=2000, help="queries timed per library (recall over all of them)"
    )
    ap.add_argument(
        "--exact-queries",
        type=int,
        default=50,
        help="queries timed for the exact-scan reference (its ground truth is computed in blocks)",
    )
    ap.add_argument("--only", nargs="*", help="run only libraries whose name contains one of these")
    ap.add_argument("--cache", help="folder to keep the generated vectors in between runs (1.5 GB at 1M)")
    ap.add_argument(
        "--real",
        type=int,
        default=0,
        help="instead of synthetic topics, build the set around this many shared tickets' int8 ONNX "
        "MiniLM vectors (each stored vector: a real one pulled towards a real neighbour, plus noise)",
    )
    ap.add_argument("--list", action="store_true", help="list the configurations and exit")
    args = ap.parse_args()
    if args.list:
        print("\n".join(LIBRARIES))
        return
    for n in args.sizes:
        run(n, args.queries, args.exact_queries, args.only, args.cache, args.real)


if __name__ == "__main__":
    main()
