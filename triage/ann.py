"""Cosine nearest neighbours over keyed unit vectors: exact for small sets, IVF above.

``VectorIndex`` is what duplicate and burst detection, "similar tickets" and any
other top-k search over stored vectors ask: ``add`` / ``remove`` by integer key as
tickets arrive and close, ``search`` for the k most similar. Below ``exact_below``
vectors it is a numpy scan (exact, no build, and faster than an index at that size);
once it grows past it, a faiss IVF index is built from the vectors and every later
``add`` goes straight into it, so a query costs about the same at 20 k and at 1 M.

The IVF index is built in a background thread (``background=True``, the default):
until it is ready the exact scan keeps answering, with every add and remove made
meanwhile, and those changes are replayed onto the new index before it takes over.
A worker's first queries therefore never wait for a build, and give the exact answer
while they would. When the set has grown ``REBUILD_GROWTH`` times past what the index
was trained on (its lists would get long), a new one is built the same way while the
old one answers.

Why faiss IVF with half-precision vectors, and these parameters: ``bench/bench_ann.py``
measured it beside usearch and faiss HNSW graphs and an exact scan on clustered 384-d
vectors at 100 k and 1 M (figures in docs/SCALING.md). Its build is k-means on a
sample plus one assignment per vector: seconds to a couple of minutes at 1 M, where
an HNSW graph of the same recall takes tens of minutes on two cores. It removes by key
(a hash-table direct map), float16 codes keep recall@10 at 0.999 on that data with half
the float32 memory (8-bit codes lost recall), and a query scans ``NPROBE`` lists of
about ``PER_LIST`` vectors, a fixed cost whatever the size.

No store, no model: callers own where vectors come from (``triage.store.similar``).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)

EXACT_BELOW = 20_000  # below this, the scan is exact and quick (a few ms at 20k x 384)
PER_LIST = 500  # vectors per IVF list (k-means cell): lists = n / PER_LIST
NPROBE = 16  # lists scanned per query: recall@10 >= 0.99 at 1 M in the bench
TRAIN_PER_LIST = 40  # k-means sample: 40 vectors per list (faiss's own minimum is 39)
REBUILD_GROWTH = 4  # rebuild once the set is this many times what the index was trained on
MAX_LISTS = 65_536  # lists at most (then they grow longer instead: a bound on k-means' cost)
REPLAY_UNDER_LOCK = 2_000  # changes made during a build: fewer than this are replayed under the lock
ADD_CHUNK = 50_000  # vectors converted and added at a time while building (bounded temporaries)

Changes = list[tuple[str, list[int], "np.ndarray | None"]]


class VectorIndex:
    """Top-k cosine search over vectors keyed by int; thread-safe; grows incrementally."""

    def __init__(
        self,
        dim: int,
        exact_below: int = EXACT_BELOW,
        background: bool = True,
        nprobe: int = NPROBE,
        per_list: int = PER_LIST,
        rebuild_growth: float = REBUILD_GROWTH,
        max_lists: int = MAX_LISTS,
    ) -> None:
        self.dim = dim
        self.exact_below = exact_below
        self.background = background
        self.nprobe = nprobe
        self.per_list = per_list
        # a query scans ``nprobe`` lists of the vectors added since the build too: they grow
        # to ``rebuild_growth`` times their trained length before a rebuild shortens them
        self.rebuild_growth = rebuild_growth
        self.max_lists = max_lists
        self._lock = threading.RLock()
        # exact mode: a growable matrix plus key <-> row maps
        self._keys: list[int] = []
        self._rows: dict[int, int] = {}
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ivf: _IVF | None = None  # once past exact_below (and built)
        self._changes: Changes | None = None  # while an index is being built: changes since its snapshot
        self._builder: threading.Thread | None = None
        self._held = 0  # inside bulk(): no build until the load is complete

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
            if self._ivf is not None:
                self._ivf.add(keys, vecs)
            else:
                self._append(keys, vecs)
            if self._changes is not None:  # an index is being built: it gets these too
                self._changes.append(("add", keys, vecs))
            elif not self._held:
                self._maybe_build()

    def remove(self, keys: Iterable[int]) -> None:
        keys = [int(k) for k in keys]
        with self._lock:
            if self._ivf is not None:
                gone = self._ivf.remove(keys)
            else:
                gone = [key for key in keys if self._drop_row(key)]
            if gone and self._changes is not None:
                self._changes.append(("remove", gone, None))

    @contextmanager
    def bulk(self) -> Iterator["VectorIndex"]:
        """Adds inside the block only collect; the index is built (if due) once it ends.

        A process loading 1 M vectors then trains its lists on all of them, not on the
        first ``exact_below`` with the rest added to lists that grow long.
        """
        with self._lock:
            self._held += 1
        try:
            yield self
        finally:
            with self._lock:
                self._held -= 1
                if not self._held and self._changes is None:
                    self._maybe_build()

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

    # ------------------------------------------------------------ building
    def _maybe_build(self) -> None:
        """Start a build when the exact set passed its threshold or the index outgrew its lists."""
        n = len(self)
        if self._ivf is None and n >= max(self.exact_below, 1):
            keys = np.asarray(self._keys, dtype=np.int64)
            vecs = self._matrix[:n].astype(np.float16)  # the builder's own copy, at half the size
        elif self._ivf is not None and n >= self.rebuild_growth * max(self._ivf.trained_for, 1):
            keys, vecs = self._ivf.snapshot()
        else:
            return
        self._changes = []
        if not self.background:
            self._finish(self._new_ivf(keys, vecs))
            return
        self._builder = threading.Thread(
            target=self._build_in_background, args=(keys, vecs), name="vector-index-build", daemon=True
        )
        self._builder.start()

    def _new_ivf(self, keys: np.ndarray, vecs: np.ndarray) -> "_IVF":
        return _IVF(
            self.dim, keys, vecs, nprobe=self.nprobe, per_list=self.per_list, max_lists=self.max_lists
        )

    def _build_in_background(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        try:
            ivf = self._new_ivf(keys, vecs)
            del vecs
            while True:  # catch up with the changes made meanwhile, outside the lock while many
                with self._lock:
                    assert self._changes is not None
                    if len(self._changes) < REPLAY_UNDER_LOCK:
                        self._finish(ivf)
                        self._builder = None
                        if not self._held:  # it may have outgrown this one during the build
                            self._maybe_build()
                        return
                    pending, self._changes = self._changes, []
                ivf.replay(pending)
        except Exception:  # noqa: BLE001 - the current search keeps answering; say why
            log.exception("building the nearest-neighbour index failed; keeping the current one")
            with self._lock:
                self._changes = None
                self.exact_below = 2**62  # do not try again in this process
        finally:
            with self._lock:
                if self._builder is threading.current_thread():
                    self._builder = None

    def _finish(self, ivf: "_IVF") -> None:
        """Replay the last changes and swap the new index in (lock held)."""
        ivf.replay(self._changes or [])
        self._ivf = ivf
        self._changes = None
        self._keys, self._rows = [], {}
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background build to finish; True once nothing is being built."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (builder := self._builder) is not None:  # a build may chain a rebuild
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            builder.join(left)
        return True

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
            if self._ivf is not None:
                return self._ivf.search(q, k)
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
            if self._ivf is not None:
                return int(key) in self._ivf.keys
            return int(key) in self._rows

    def absent(self, keys: Iterable[int]) -> list[int]:
        """The keys not in the index (one lock for all of them)."""
        with self._lock:
            held = self._ivf.keys if self._ivf is not None else self._rows
            return [k for k in (int(k) for k in keys) if k not in held]

    def __len__(self) -> int:
        with self._lock:
            return len(self._ivf.keys) if self._ivf is not None else len(self._keys)

    @property
    def approximate(self) -> bool:
        return self._ivf is not None


class _IVF:
    """A faiss IVF index with float16 codes, keyed by int (callers hold the index's lock)."""

    def __init__(
        self,
        dim: int,
        keys: np.ndarray,
        vecs: np.ndarray,
        nprobe: int,
        per_list: int,
        max_lists: int = MAX_LISTS,
    ) -> None:
        import faiss

        self.trained_for = len(keys)
        lists = max(1, min(len(keys) // max(per_list, 1), max_lists, 65_536))
        self.index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        self.index.cp.niter = 10  # k-means rounds: plenty for a shortlist, a third of the default
        self.index.verbose = False
        rng = np.random.default_rng(0)
        sample = rng.choice(len(keys), min(len(keys), TRAIN_PER_LIST * lists), replace=False)
        self.index.train(np.asarray(vecs[np.sort(sample)], dtype=np.float32))
        self.index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # removal by key
        self.index.nprobe = min(nprobe, lists)
        self.keys: set[int] = set()
        for lo in range(0, len(keys), ADD_CHUNK):
            self.add(keys[lo : lo + ADD_CHUNK], np.asarray(vecs[lo : lo + ADD_CHUNK], dtype=np.float32))

    def add(self, keys, vecs: np.ndarray) -> None:
        ids = np.asarray(keys, dtype=np.int64)
        self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
        self.keys.update(int(k) for k in ids)

    def remove(self, keys: list[int]) -> list[int]:
        import faiss

        gone = [k for k in keys if k in self.keys]
        if gone:
            ids = np.asarray(gone, dtype=np.int64)
            self.index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))
            self.keys.difference_update(gone)
        return gone

    def search(self, q: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self.keys:
            return []
        scores, ids = self.index.search(q.reshape(1, -1), k)
        return [(int(i), round(float(s), 6)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Every key and its (float16) vector, for a rebuild."""
        keys = np.fromiter(self.keys, dtype=np.int64, count=len(self.keys))
        vecs = np.empty((len(keys), self.index.d), dtype=np.float16)
        for lo in range(0, len(keys), ADD_CHUNK):
            vecs[lo : lo + ADD_CHUNK] = self.index.reconstruct_batch(keys[lo : lo + ADD_CHUNK])
        return keys, vecs

    def replay(self, changes: Changes) -> None:
        """Apply adds and removes, in the order they were made."""
        for kind, keys, vecs in changes:
            self.remove(keys)
            if kind == "add":
                assert vecs is not None
                self.add(keys, vecs)


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).astype(np.float32, copy=False)
