"""Cosine nearest neighbours over keyed unit vectors: exact for small sets, HNSW above.

``VectorIndex`` is what duplicate and burst detection, "similar tickets" and any
other top-k search over stored vectors ask: ``add`` / ``remove`` by integer key as
tickets arrive and close, ``search`` for the k most similar. Below ``exact_below``
vectors it is a numpy scan (exact, no build, and faster than a graph at that size);
once it grows past it, a usearch HNSW graph is built from the vectors and every
later ``add`` goes straight into the graph, so a query costs about the same at 20 k
and at 1 M vectors.

The graph is built in a background thread (``background=True``, the default): until
it is ready the exact scan keeps answering, with every add and remove made meanwhile,
and those changes are replayed onto the graph before it takes over. A worker's first
queries therefore never wait for a build (minutes at 1 M vectors), and give the exact
answer while they would.

Why usearch, and these parameters: ``bench/bench_ann.py`` measured it beside faiss
(HNSW, IVF-Flat, IVF-SQ8) and an exact scan on clustered 384-d vectors at 100 k and
1 M (figures in docs/SCALING.md). It removes a key in place (faiss's HNSW cannot; IVF
removal scans its lists), builds on every core, and with 8-bit storage a 1 M-ticket
index takes about a quarter of the float32 matrix. A lower build effort
(``expansion_add`` 64 rather than 128) halves the build and still gives recall@10
well above 0.95.

No store, no model: callers own where vectors come from (``triage.store.similar``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Iterable

import numpy as np

log = logging.getLogger(__name__)

EXACT_BELOW = 20_000  # below this, the scan is exact and quick (~1 ms at 20k x 384)
BULK = 1_000  # adds of at least this many vectors are built on all cores
DTYPE = "f16"  # what the graph stores per dimension (bench: i8 loses recall on close neighbours)
CONNECTIVITY = 16  # HNSW M: edges per node
EXPANSION_ADD = 64  # build effort (usearch's default is 128): half the build time
EXPANSION_SEARCH = 128  # query effort: recall@10 >= 0.99 at 1 M in the bench
REPLAY_UNDER_LOCK = 2_000  # changes made during a build: fewer than this are replayed under the lock


class VectorIndex:
    """Top-k cosine search over vectors keyed by int; thread-safe; grows incrementally."""

    def __init__(
        self,
        dim: int,
        exact_below: int = EXACT_BELOW,
        dtype: str = DTYPE,
        connectivity: int = CONNECTIVITY,
        expansion_search: int = EXPANSION_SEARCH,
        expansion_add: int = EXPANSION_ADD,
        background: bool = True,
    ) -> None:
        self.dim = dim
        self.exact_below = exact_below
        self.background = background
        self._dtype = dtype
        self._connectivity = connectivity
        self._expansion = expansion_search
        self._expansion_add = expansion_add
        self._lock = threading.RLock()
        # exact mode: a growable matrix plus key <-> row maps
        self._keys: list[int] = []
        self._rows: dict[int, int] = {}
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._graph = None  # a usearch Index once past exact_below (and built)
        # while a graph is being built: the changes made since its snapshot, in order
        self._changes: list[tuple[str, list[int], np.ndarray | None]] | None = None
        self._builder: threading.Thread | None = None

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
            if self._changes is not None:  # a graph is being built: it gets these too
                self._changes.append(("add", keys, vecs))
            elif len(self._keys) >= max(self.exact_below, 1):
                self._start_graph()

    def remove(self, keys: Iterable[int]) -> None:
        keys = [int(k) for k in keys]
        with self._lock:
            if self._graph is not None:
                for key in keys:
                    if self._graph.contains(key):
                        self._graph.remove(key)
                return
            gone = [key for key in keys if self._drop_row(key)]
            if gone and self._changes is not None:
                self._changes.append(("remove", gone, None))

    def _drop_row(self, key: int) -> bool:
        row = self._rows.pop(key, None)
        if row is None:
            return False
        last = len(self._keys) - 1  # move the last row into the hole: O(1) removal
        if row != last:
            moved = self._keys[last]
            self._keys[row] = moved
            self._rows[moved] = row
            self._matrix[row] = self._matrix[last]
        self._keys.pop()
        return True

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

    # ------------------------------------------------------------ the graph
    def _start_graph(self) -> None:
        """Build the graph from a snapshot of the exact rows (lock held); swap it in when done."""
        n = len(self._keys)
        keys = np.asarray(self._keys, dtype=np.uint64)
        vecs = self._matrix[:n].copy()  # removals move rows: the builder needs its own copy
        self._changes = []
        if not self.background:
            self._finish_graph(self._new_graph(keys, vecs))
            return
        self._builder = threading.Thread(
            target=self._build_in_background, args=(keys, vecs), name="vector-index-build", daemon=True
        )
        self._builder.start()

    def _new_graph(self, keys: np.ndarray, vecs: np.ndarray):
        from usearch.index import Index

        graph = Index(
            ndim=self.dim,
            metric="cos",
            dtype=self._dtype,
            connectivity=self._connectivity,
            expansion_add=self._expansion_add,
            expansion_search=self._expansion,
        )
        if len(keys):
            graph.add(keys, vecs, threads=_threads(keys))
        return graph

    def _build_in_background(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        try:
            graph = self._new_graph(keys, vecs)
            del vecs
            while True:  # catch up with the changes made meanwhile, outside the lock while many
                with self._lock:
                    assert self._changes is not None
                    if len(self._changes) < REPLAY_UNDER_LOCK:
                        self._finish_graph(graph)
                        return
                    pending, self._changes = self._changes, []
                _replay(graph, pending)
        except Exception:  # noqa: BLE001 - the exact scan keeps answering; say why
            log.exception("building the nearest-neighbour graph failed; staying exact")
            with self._lock:
                self._changes = None
                self.exact_below = 2**62  # do not try again in this process
        finally:
            with self._lock:
                self._builder = None

    def _finish_graph(self, graph) -> None:
        """Replay the last changes and swap the graph in (lock held)."""
        _replay(graph, self._changes or [])
        self._graph = graph
        self._changes = None
        self._keys, self._rows = [], {}
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background build to finish; True once nothing is being built."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self._builder is None

    @property
    def building(self) -> bool:
        return self._builder is not None

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
        with self._lock:
            if self._graph is not None:
                return bool(self._graph.contains(int(key)))
            return int(key) in self._rows

    def __len__(self) -> int:
        with self._lock:
            return len(self._graph) if self._graph is not None else len(self._keys)

    @property
    def approximate(self) -> bool:
        return self._graph is not None


def _replay(graph, changes: list[tuple[str, list[int], np.ndarray | None]]) -> None:
    """Apply adds and removes, in the order they were made, to a graph being built."""
    for kind, keys, vecs in changes:
        present = [k for k in keys if graph.contains(k)]
        for key in present:
            graph.remove(key)
        if kind == "add":
            graph.add(np.asarray(keys, dtype=np.uint64), vecs, threads=_threads(keys))


def _threads(keys) -> int:
    """Bulk loads (a process building its index) use every core; one ticket uses one."""
    return _cores() if len(keys) >= BULK else 1


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).astype(np.float32, copy=False)
