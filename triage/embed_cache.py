"""Batch embedding with a persistent cache: KB builds, training rows, ticket backfills.

Everything that embeds many texts goes through :func:`embed`:

* **cache** -- an :class:`EmbeddingCache` is one SQLite file per encoder identity
  (:func:`encoder_identity`: the encoder's reference plus the weights package's version),
  with one row per text keyed by the sha256 of the text (``text_key``, the key
  ``training.batch`` writes too). A text embedded once by that encoder is never embedded
  again, so a rebuild after editing a few articles, or a restart in the middle of a
  build, embeds only what is not stored yet: batches are written as they finish.
* **batches on every core** -- texts are de-duplicated, sorted by length (a batch pads to
  its longest text) and cut into batches. An encoder that can run batches side by side
  offers ``single_threaded()`` (the ONNX encoder does: one ONNX Runtime thread per batch,
  several batches at once, which measured more texts per CPU-second than one batch
  spread over both cores with ONNX's spinning thread pool). Other encoders (torch,
  which threads internally; the hashing test encoder) run one batch at a time.
* **progress** -- a tqdm bar over texts (not batches), so its rate is texts/s.

Usage, e.g. from a training or backfill job::

    from triage.embed_cache import EmbeddingCache, embed
    from triage.encoder import load_encoder

    enc = load_encoder({"kind": "minilm-onnx"})
    vecs = embed(texts, enc, cache=EmbeddingCache.for_encoder(enc), progress=True)

``triage.encoder.CachedEncoder`` wraps the same two things behind the ``Encoder``
protocol for code that wants an encoder object.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .cache_dir import cache_dir as default_cache_dir

BATCH = 32  # texts per batch: ~128-token KB chunks measured the same per text from 8 to 128
_SQL_VARS = 900  # SQLite's bound-parameter limit is 999 on older builds


def text_key(text: str) -> str:
    """A text's row key: sha256 of its UTF-8 bytes (the encoder is the file, not the key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_identity(encoder) -> dict:
    """What makes two encoders give the same vectors: reference + the weights package version."""
    ref = dict(encoder.reference())
    package = ref.get("package")
    if package:
        from importlib import metadata

        try:
            ref["package_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            ref["package_version"] = None
    return ref


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class EmbeddingCache:
    """Vectors of one encoder identity, in one SQLite file, keyed by :func:`text_key`."""

    def __init__(self, path: str | Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_encoder(cls, encoder, root: str | Path | None = None) -> "EmbeddingCache":
        """The cache file of ``encoder``'s identity under ``root`` (default: the cache folder)."""
        identity = encoder_identity(encoder)
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
        slug = re.sub(r"[^A-Za-z0-9.-]+", "-", str(encoder.name))
        folder = Path(root) if root else default_cache_dir()
        return cls(folder / f"embeddings-{slug}-{digest}.sqlite", int(encoder.dim))

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")  # readers (other workers) never wait for a build
        con.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB)")
        return con

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors among ``keys`` (missing keys are simply absent)."""
        found: dict[str, np.ndarray] = {}
        con = self._connect()
        try:
            for i in range(0, len(keys), _SQL_VARS):
                part = list(keys[i : i + _SQL_VARS])
                rows = con.execute(
                    f"SELECT key, v FROM vec WHERE key IN ({','.join('?' * len(part))})", part
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.size == self.dim:  # a damaged row is re-embedded, never trusted
                        found[key] = vec
        finally:
            con.close()
        return found

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        con = self._connect()
        try:
            con.executemany(
                "INSERT OR REPLACE INTO vec VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )
            con.commit()
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
        try:
            return int(con.execute("SELECT count(*) FROM vec").fetchone()[0])
        finally:
            con.close()


def embed(
    texts: Sequence[str],
    encoder,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = BATCH,
    workers: int | None = None,
    progress: bool = False,
    desc: str = "embedding",
) -> np.ndarray:
    """One L2-normalised float32 row per text, in order; only uncached, distinct texts are encoded.

    ``workers`` (default: every usable core) applies to encoders that offer
    ``single_threaded()``; each finished batch is stored in ``cache`` at once.
    """
    texts = [str(t) for t in texts]
    keys = [text_key(t) for t in texts]
    distinct = dict(zip(keys, texts))  # first text per key, in order
    found = cache.get(list(distinct)) if cache is not None else {}
    todo = sorted((k for k in distinct if k not in found), key=lambda k: len(distinct[k]))
    if todo:
        found.update(
            _encode_missing(
                [distinct[k] for k in todo], todo, encoder, cache, batch_size, workers, progress, desc
            )
        )
    out = np.zeros((len(texts), int(encoder.dim)), dtype=np.float32)
    for i, key in enumerate(keys):
        out[i] = found[key]
    return out


def _encode_missing(
    texts, keys, encoder, cache, batch_size, workers, progress, desc
) -> dict[str, np.ndarray]:
    """Encode ``texts`` (already sorted by length) in batches, concurrently where the encoder can."""
    single = getattr(encoder, "single_threaded", None)
    workers = (workers or usable_cores()) if single is not None else 1
    worker_encoder = single() if single is not None and workers > 1 else encoder
    batches = [
        (keys[i : i + batch_size], texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
    ]
    bar = _bar(len(texts), f"{desc} {len(texts)} texts ({encoder.name}, {workers} worker(s))", progress)
    done: dict[str, np.ndarray] = {}

    def finish(batch_keys, vecs) -> None:
        vecs = np.asarray(vecs, dtype=np.float32).reshape(len(batch_keys), -1)
        done.update(zip(batch_keys, vecs))
        if cache is not None:
            cache.put(zip(batch_keys, vecs))
        if bar is not None:
            bar.update(len(batch_keys))

    try:
        if workers <= 1:
            for batch_keys, batch in batches:
                finish(batch_keys, worker_encoder.encode(batch, batch_size=len(batch)))
        else:
            _run_concurrently(batches, worker_encoder, workers, finish)
    finally:
        if bar is not None:
            bar.close()
    return done


def _run_concurrently(batches, encoder, workers: int, finish) -> None:
    """At most ``workers`` batches in flight; results are stored by this thread as they finish."""
    pending: dict = {}
    queue = iter(batches)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed") as pool:

        def submit_next() -> None:
            item = next(queue, None)
            if item is not None:
                pending[pool.submit(encoder.encode, item[1], batch_size=len(item[1]))] = item[0]

        for _ in range(workers):
            submit_next()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                batch_keys = pending.pop(future)
                finish(batch_keys, future.result())
                submit_next()


def _bar(total: int, desc: str, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text", smoothing=0.1)
