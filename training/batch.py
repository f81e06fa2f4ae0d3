"""Embedding and scoring of history in batch: one pipeline, in-process or on Ray Data.

What needs it: training features (MiniLM vectors of every historical ticket), label
quality checks, knowledge-gap clustering and backfills. Embedding 47,837 tickets on
one CPU process takes ~460 s, so 10 M tickets need more than one machine.

The same two steps run on either engine and write the same Parquet dataset:

* ``embed``: ``row`` (the export's 1-based row), ``key`` (sha256 of the model text:
  the key ``CachedEncoder`` uses, so any text embedded once is found again) and
  ``vector`` (list<float32>);
* ``score``: ``row`` plus ``<head>_label``, ``<head>_probability`` and
  ``<head>_decision`` for every head of a bundle.

``engine="local"`` (the default, for small desks) runs the batches in this process.
``engine="ray"`` runs them as a Ray Data ``map_batches`` over actors that each load the
encoder or bundle once: ``address=None`` starts Ray in local mode on this machine (what
the tests use), ``address="ray://head:10001"`` or ``"auto"`` runs the identical code on a
cluster (docs/SCALING.md says how one is started). Ray is imported only here and only
for that engine; ``pip install 'triage[ray]'`` brings it.

Training reads the vectors back with :class:`PrecomputedEncoder` (``triage train
--embeddings DIR``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from triage.encoder import Encoder, load_encoder

log = logging.getLogger("training.batch")

ENGINES = ("local", "ray")


def text_key(text: str) -> str:
    """The vector's key: the same sha256 of the model text that ``CachedEncoder`` uses."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def export_texts(data_path: str | Path, mapping_path: str | Path) -> pd.DataFrame:
    """``row``, ``subject``, ``body``, ``text`` for every export row with text (as training reads it)."""
    from training.mapping import load_export, load_mapping, read_export

    mapping = load_mapping(mapping_path)
    data = load_export(data_path, mapping)
    raw = read_export(data_path)
    idx = [r - 1 for r in data.source_rows]  # the raw frame's index: 0-based record numbers
    subject = raw[mapping.subject].loc[idx].tolist() if mapping.subject else [None] * len(idx)
    return pd.DataFrame(
        {
            "row": np.asarray(data.source_rows, dtype=np.int64),
            "subject": [None if s is None else str(s) for s in subject],
            "body": [None if b is None else str(b) for b in raw[mapping.body].loc[idx].tolist()],
            "text": data.texts,
        }
    )


# ------------------------------------------------------------------ the batch workers
class EmbedBatch:
    """Loads the encoder once (per Ray actor, or once locally); embeds a batch of texts."""

    def __init__(self, encoder_ref: dict, workers: int | None = None) -> None:
        self.encoder = load_encoder(encoder_ref)
        self.workers = workers  # batches side by side (triage/embed_cache.py); None: every core

    def __call__(self, batch: pd.DataFrame):
        import pyarrow as pa

        texts = [str(t) for t in batch["text"].tolist()]
        from triage.embed_cache import embed

        vectors = np.asarray(embed(texts, self.encoder, workers=self.workers), dtype=np.float32)
        # an Arrow table with a plain list<float32> column, so both engines write the same
        # schema (a pandas column of arrays would become Ray's tensor extension type)
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        offsets = pa.array(
            np.arange(0, vectors.size + 1, vectors.shape[1] or 1, dtype=np.int32)[: len(texts) + 1]
        )
        return pa.table(
            {
                "row": pa.array(batch["row"].to_numpy(dtype=np.int64)),
                "key": pa.array([text_key(t) for t in texts], type=pa.string()),
                "vector": pa.ListArray.from_arrays(offsets, flat),
            }
        )


class ScoreBatch:
    """Loads a bundle once; classifies a batch of tickets into flat per-head columns."""

    def __init__(self, bundle_path: str, encoder_ref: dict | None = None) -> None:
        from triage.predict import Triager

        encoder = load_encoder(encoder_ref) if encoder_ref else None
        self.triager = Triager.from_bundle(bundle_path, encoder=encoder)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from triage.ticket import Ticket

        tickets = [
            Ticket(subject=s or "", body=b or "")
            for s, b in zip(batch["subject"].tolist(), batch["body"].tolist())
        ]
        results = self.triager.classify(tickets)
        out: dict[str, Any] = {"row": batch["row"].to_numpy(dtype=np.int64)}
        for head in self.triager.heads:
            preds = [(r.get("fields") or {}).get(head) or {} for r in results]
            out[f"{head}_label"] = [None if p.get("label") is None else str(p["label"]) for p in preds]
            out[f"{head}_probability"] = np.asarray(
                [np.nan if p.get("probability") is None else float(p["probability"]) for p in preds],
                dtype=np.float64,
            )
            out[f"{head}_decision"] = [p.get("decision") for p in preds]
        return pd.DataFrame(out)


# ------------------------------------------------------------------ engines
@dataclass
class BatchRun:
    engine: str
    rows: int
    out: Path
    seconds: float


def run(
    table: pd.DataFrame,
    worker: type,
    worker_kwargs: dict,
    out_dir: str | Path,
    *,
    engine: str = "local",
    address: str | None = None,
    batch_size: int = 256,
    concurrency: int | None = None,
) -> BatchRun:
    """Apply ``worker(**worker_kwargs)`` to ``table`` in batches; write Parquet to ``out_dir``."""
    import time

    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    out = Path(out_dir)
    if out.exists() and any(out.glob("*.parquet")):
        raise FileExistsError(f"{out} already holds Parquet files: choose an empty --out")
    start = time.perf_counter()
    if engine == "local":
        _run_local(table, worker, worker_kwargs, out, batch_size)
    else:
        _run_ray(table, worker, worker_kwargs, out, address, batch_size, concurrency)
    return BatchRun(engine, len(table), out, time.perf_counter() - start)


def _run_local(table: pd.DataFrame, worker: type, kwargs: dict, out: Path, batch_size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    fn = worker(**kwargs)
    writer = None
    try:  # one batch in memory at a time: the output streams to a single file
        for lo in range(0, len(table), batch_size):
            part = fn(table.iloc[lo : lo + batch_size])
            if isinstance(part, pd.DataFrame):
                part = pa.Table.from_pandas(part, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(out / "part-00000.parquet", part.schema)
            writer.write_table(part)
    finally:
        if writer is not None:
            writer.close()


def _run_ray(
    table: pd.DataFrame,
    worker: type,
    kwargs: dict,
    out: Path,
    address: str | None,
    batch_size: int,
    concurrency: int | None,
) -> None:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--engine ray needs Ray: pip install 'triage[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        # local mode when no address: a throw-away Ray on this machine, no dashboard
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actors = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # several blocks per actor, so every actor gets work and a slow one is not the tail
        blocks = max(1, min(4 * actors, -(-len(table) // batch_size)))
        step = -(-len(table) // blocks)
        ds = ray.data.from_pandas([table.iloc[lo : lo + step] for lo in range(0, len(table), step)])
        ds = ds.map_batches(
            worker,
            fn_constructor_kwargs=kwargs,
            batch_size=batch_size,
            batch_format="pandas",
            concurrency=actors,
            num_cpus=1,
        )
        ds.write_parquet(str(out))
    finally:
        if started_here:
            ray.shutdown()


# ------------------------------------------------------------------ reading the output
def read_vectors(out_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """``(keys, vectors)`` from an ``embed`` output folder (any engine), streamed by file."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    keys: list[str] = []
    parts: list[np.ndarray] = []
    for batch in pads.dataset(str(out_dir), format="parquet").to_batches(columns=["key", "vector"]):
        keys.extend(batch.column("key").to_pylist())
        column = batch.column("vector")
        if isinstance(column.type, pa.ExtensionType):  # a tensor column from another writer
            column = column.storage
        flat = column.flatten().to_numpy(zero_copy_only=False)
        parts.append(np.asarray(flat, dtype=np.float32).reshape(len(batch), -1))
    vectors = np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    return keys, vectors


def read_scores(out_dir: str | Path) -> pd.DataFrame:
    """A ``score`` output folder as one frame, in export row order."""
    import pyarrow.dataset as pads

    frame = pads.dataset(str(out_dir), format="parquet").to_table().to_pandas()
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


class PrecomputedEncoder:
    """An encoder that answers from an ``embed`` output and asks ``inner`` only for new texts.

    ``reference()`` is the inner encoder's, so a bundle trained on these vectors records
    the encoder that made them (and serves with it). The vectors must come from that same
    encoder: the embed run's ``--encoder`` and training's must match.
    """

    def __init__(self, inner: Encoder, out_dir: str | Path) -> None:
        keys, vectors = read_vectors(out_dir)
        if len(keys) and vectors.shape[1] != inner.dim:
            raise ValueError(
                f"{out_dir}: vectors have {vectors.shape[1]} dimensions, the "
                f"encoder {inner.dim}: embedded with another encoder?"
            )
        self.inner = inner
        self.name = getattr(inner, "name", "precomputed")
        self.dim = inner.dim
        self._rows = {k: i for i, k in enumerate(keys)}
        self._vectors = vectors
        self.hits = self.misses = 0

    def reference(self) -> dict:
        return self.inner.reference()

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing = []
        for i, text in enumerate(texts):
            row = self._rows.get(text_key(text))
            if row is None:
                missing.append(i)
            else:
                out[i] = self._vectors[row]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            out[missing] = self.inner.encode(
                [texts[i] for i in missing], batch_size=batch_size, progress=progress
            )
        return out


def encoder_ref(name: str) -> dict:
    """``minilm``, ``minilm-onnx`` or ``hashing`` (the CLI's names) as an encoder reference."""
    from training.pipeline import resolve_encoder

    return resolve_encoder(name).reference()


def embed(data: Path, mapping: Path, out: Path, *, encoder: str = "minilm-onnx", **engine: Any) -> BatchRun:
    ref, workers = encoder_ref(encoder), None
    if engine.get("engine") == "ray":
        # one CPU per actor: one batch at a time on one ONNX thread (a pool of every core in
        # each actor oversubscribes the machine); locally, batches side by side on every core
        ref, workers = (dict(ref, threads=1) if ref.get("kind") == "minilm-onnx" else ref), 1
    kwargs = {"encoder_ref": ref, "workers": workers}
    return run(export_texts(data, mapping), EmbedBatch, kwargs, out, **engine)


def score(
    bundle: Path, data: Path, mapping: Path, out: Path, *, encoder: str | None = None, **engine: Any
) -> BatchRun:
    kwargs = {
        "bundle_path": str(Path(bundle).resolve()),
        "encoder_ref": encoder_ref(encoder) if encoder else None,
    }
    return run(export_texts(data, mapping), ScoreBatch, kwargs, out, **engine)


Runner = Callable[..., BatchRun]
