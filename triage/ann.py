"""Cosine nearest neighbours over keyed unit vectors: exact for small sets, HNSW above.

``VectorIndex`` is what duplicate and burst detection, "similar tickets" and any
other top-k search over stored vectors ask: ``add`` / ``remove`` by integer key as
tickets arrive and close, ``search`` for the k most similar. Below ``exact_below``
vectors it is a numpy scan (exact, no build, and faster than a graph at that size);
once it grows past it, the vectors move into a usearch HNSW graph and every later
``add`` goes straight into the graph, so a query costs about the same at 20 k and
at 1 M vectors.

Why usearch: ``bench/bench_ann.py`` measured it beside faiss (HNSW and IVF) and an
exact scan on clustered 384-d vectors at 100 k and 1 M (figures in docs/SCALING.md):
it meets recall@10 >= 0.95 with p99 well under 5 ms at 1 M, installs as a wheel,
supports removal by key (faiss's HNSW does not), and with half-precision storage
keeps a 1 M-ticket index in about half the memory of the float32 matrix.

No store, no model: callers own where vectors come from (``triage.store.similar``).
"""

from __future__ import annotations

import threading
from typing import Iterable

import numpy as np

EXACT_BELOW = 20_000  # below this, the scan is exact and quick (~1 ms at 20k x 384)
BULK = 1_000  # adds of at least this many vectors are built on all cores


class VectorIndex:
    """Top-k cosine search over vectors keyed by int; thread-safe; grows incrementally."""

    def __init__(
        self,
        dim: int,
        exact_below: int = EXACT_BELOW,
        dtype: str = "f16",
        connectivity: int = 16,
        expansion_search: int = 128,
    ) -> None:
        self.dim = dim
        self.exact_below = exact_below
        self._dtype = dtype
        self._connectivity = connectivity
        self._expansion = expansion_search
        self._lock = threading.RLock()
        # exact mode: a growable matrix plus key <-> row maps
        self._keys: list[int] = []
        self._rows: dict[int, int] = {}
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._graph = None  # a usearch Index once past exact_below

    # ------------------------------------------------------------ writing
    def add(self, keys: Iterable[int], vectors) -> None:
        """Add (or replace) vectors; they are L2-normalised here, so any scale will do."""
        keys = [int(k) for k in keys]
        if not keys:
            return
        vecs = _unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1))
        if vecs.shape[1] != self.dim:
            raise ValueError(f"vectors have {vecs.shape[1]} dimensions, the index {self.dim}")
        with self._lock:
            self.remove([k for k in keys if k in self])
            if self._graph is not None:
                self._graph.add(np.asarray(keys, dtype=np.uint64), vecs, threads=_threads(keys))
                return
            self._append(keys, vecs)
            if len(self._keys) >= max(self.exact_below, 1):
                self._to_graph()

    def remove(self, keys: Iterable[int]) -> None:
        with self._lock:
            for key in (int(k) for k in keys):
                if self._graph is not None:
                    if self._graph.contains(key):
                        self._graph.remove(key)
                    continue
                row = self._rows.pop(key, None)
                if row is None:
                    continue
                last = len(self._keys) - 1  # move the last row into the hole: O(1) removal
                if row != last:
                    moved = self._keys[last]
                    self._keys[row] = moved
                    self._rows[moved] = row
                    self._matrix[row] = self._matrix[last]
                self._keys.pop()

    def _append(self, keys: list[int], vecs: np.ndarray) -> None:
        n = len(self._keys)
        need = n + len(keys)
        if need > self._matrix.shape[0]:  # amortised growth, not a copy per ticket
            grown = np.zeros((max(need, 2 * self._matrix.shape[0], 256), self.dim), np.float32)
            grown[:n] = self._matrix[:n]
            self._matrix = grown
        self._matrix[n:need] = vecs
        for i, key in enumerate(keys):
            self._rows[key] = n + i
        self._keys.extend(keys)

    def _to_graph(self) -> None:
        from usearch.index import Index

        graph = Index(
            ndim=self.dim,
            metric="cos",
            dtype=self._dtype,
            connectivity=self._connectivity,
            expansion_search=self._expansion,
        )
        n = len(self._keys)
        if n:
            graph.add(np.asarray(self._keys, dtype=np.uint64), self._matrix[:n], threads=_threads(self._keys))
        self._graph = graph
        self._keys, self._rows = [], {}
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)

    # ------------------------------------------------------------ reading
    def search(self, vector, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` nearest keys with their cosine, most similar first."""
        q = _unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        if q.size != self.dim:
            raise ValueError(f"query has {q.size} dimensions, the index {self.dim}")
        with self._lock:
            if self._graph is not None:
                if len(self._graph) == 0:
                    return []
                found = self._graph.search(q, k, threads=1)
                return [(int(key), round(1.0 - float(d), 6)) for key, d in zip(found.keys, found.distances)]
            n = len(self._keys)
            if n == 0:
                return []
            # einsum, not `@`: single-threaded and steady on a busy server (see duplicates.py)
            scores = np.einsum("ij,j->i", self._matrix[:n], q)
            top = np.argpartition(-scores, min(k, n) - 1)[:k] if n > k else np.arange(n)
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(self._keys[i], round(float(scores[i]), 6)) for i in top]

    def __contains__(self, key: int) -> bool:
        if self._graph is not None:
            return bool(self._graph.contains(int(key)))
        return int(key) in self._rows

    def __len__(self) -> int:
        return len(self._graph) if self._graph is not None else len(self._keys)

    @property
    def approximate(self) -> bool:
        return self._graph is not None


def _threads(keys: list[int]) -> int:
    """Bulk loads (a process building its index) use every core; one ticket uses one."""
    return 0 if len(keys) >= BULK else 1


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).astype(np.float32, copy=False)
