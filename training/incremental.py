"""The full-data candidate: every head's :class:`~triage.incremental.IncrementalHead` fitted
in one streamed pass over the export, beside the candidates fitted on a stratified sample.

Which rows it learns from, and why:

* never the holdout (the split is the same function of the text as everywhere: the
  retrain gate grades bundles on it);
* never the rows of the stratified sample: the sample's train rows are where it is
  scored and calibrated (rows it never saw, like the out-of-fold rows of the others),
  and the sample's calibration rows are where thresholds and the winner are chosen;
* everything else: train and calibration split rows of the rest of the file.

Memory: one slice of ``batch_rows`` rows and the heads' weights. Time: one hashing
transform per slice, shared by every head.

Order: rows are learnt in a random order drawn from ``seed`` (the same every run), not in
file order, through a shuffle buffer of ``SHUFFLE_ROWS`` rows (:class:`_Shuffler`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import numpy as np

from triage.incremental import IncrementalHead

from .mapping import Mapping
from .stream import BATCH_ROWS, Census, scan

log = logging.getLogger(__name__)


# Rows hashed at once: a bounded sparse matrix, whatever the size of the slices the file is read in.
LEARN_ROWS = 4096
# Rows held to mix the learning order (their texts and labels: ~100 MB of ~1 kB tickets).
SHUFFLE_ROWS = 100_000


def fit_incremental(
    path: str | Path,
    mapping: Mapping,
    heads: Sequence[str],
    info: Census,
    sample_rows: Sequence[int],
    *,
    splits: Callable[[list[str]], np.ndarray],
    seed: int = 0,
    batch_rows: int = BATCH_ROWS,
    progress: bool = False,
    shuffle_rows: int = SHUFFLE_ROWS,
) -> dict[str, IncrementalHead]:
    """One :class:`IncrementalHead` per head with two classes or more, after one pass.

    ``splits`` gives the split of each text (training.pipeline.assign_splits, passed in)."""
    models = {}
    for h in heads:
        counts = {c: n for c, n in info.counts.get(h, {}).items() if c not in info.rare.get(h, {})}
        if len(counts) >= 2:
            models[h] = IncrementalHead(sorted(counts), counts, random_state=seed)
    if not models:
        return {}
    sample = np.sort(np.asarray(sample_rows, dtype=np.int64))
    bar = _bar(info.rows, progress)
    mixer = _Shuffler(models, np.random.default_rng(seed), shuffle_rows)
    for part in scan(path, mapping, rare=info.rare, batch_rows=batch_rows):
        rows = np.asarray(part.source_rows, dtype=np.int64)
        outside = ~np.isin(rows, sample, assume_unique=True)
        fit_ok = outside & (splits(part.texts) != "holdout")
        mixer.add(part, np.flatnonzero(fit_ok))
        if bar is not None:
            bar.update(part.counts["rows_read"])
    mixer.flush()
    if bar is not None:
        bar.close()
    learnt = {h: m for h, m in models.items() if getattr(m, "rows_learnt_", 0)}
    log.info("incremental heads: %s", {h: m.rows_learnt_ for h, m in learnt.items()})
    return learnt


class _Shuffler:
    """A shuffle buffer: rows wait here until ``size`` are held, then a random half of them is
    learnt; the rest at the end, in random order.

    SGD ends up closest to what it saw last, so an export sorted by team or by time, learnt
    in file order, pulls the weights towards its last rows (the shared it_tickets sorted by
    team: holdout macro-F1 0.45 in file order; bench/bench_train_time.py --incremental). An
    export of up to ``size`` learnt rows is learnt in one fully random order; a longer one
    is mixed within a window of about ``size`` rows. The order is drawn from the seed: the
    same every run."""

    def __init__(self, models: dict[str, IncrementalHead], rng: np.random.Generator, size: int) -> None:
        self.models, self.rng, self.size = models, rng, size
        self.held = SimpleNamespace(texts=[], labels={h: [] for h in models})

    def add(self, part, rows: np.ndarray) -> None:
        self.held.texts += [part.texts[i] for i in rows]
        for h, values in self.held.labels.items():
            values += [part.labels[h][i] for i in rows]
        if len(self.held.texts) >= self.size:
            self._learn(len(self.held.texts) // 2)

    def flush(self) -> None:
        self._learn(len(self.held.texts))

    def _learn(self, n: int) -> None:
        order = self.rng.permutation(len(self.held.texts))
        _learn(self.models, self.held, order[:n])
        keep = order[n:]
        self.held = SimpleNamespace(
            texts=[self.held.texts[i] for i in keep],
            labels={h: [v[i] for i in keep] for h, v in self.held.labels.items()},
        )


def _learn(models: dict[str, IncrementalHead], part, rows: np.ndarray) -> None:
    """Each head learns its labelled rows of ``rows``, hashed once per chunk for every head."""
    hasher = next(iter(models.values()))
    for lo in range(0, len(rows), LEARN_ROWS):
        chunk = rows[lo : lo + LEARN_ROWS]
        M = hasher.hash([part.texts[i] for i in chunk])
        for h, model in models.items():
            labels = [part.labels[h][i] for i in chunk]
            has = np.asarray([v is not None for v in labels])
            if has.any():
                model.learn([], [v for v in labels if v is not None], matrix=M[has])


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="incremental (full export)", unit="rows")
