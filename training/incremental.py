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

Order: the rows of each slice are learnt in a random order drawn from ``seed`` (the same
every run), not in file order; the slices themselves come in file order, so an export
sorted by class over more than a slice is only partly mixed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from triage.incremental import IncrementalHead

from .mapping import Mapping
from .stream import BATCH_ROWS, Census, scan

log = logging.getLogger(__name__)


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
    rng = np.random.default_rng(seed)
    for part in scan(path, mapping, rare=info.rare, batch_rows=batch_rows):
        rows = np.asarray(part.source_rows, dtype=np.int64)
        outside = ~np.isin(rows, sample, assume_unique=True)
        fit_ok = outside & (splits(part.texts) != "holdout")
        # SGD learns what it sees last best: an export sorted by time or by team would pull
        # the weights towards its last rows, so each slice is learnt in a seeded random order
        _learn(models, part, rng.permutation(np.flatnonzero(fit_ok)))
        if bar is not None:
            bar.update(part.counts["rows_read"])
    if bar is not None:
        bar.close()
    learnt = {h: m for h, m in models.items() if getattr(m, "rows_learnt_", 0)}
    log.info("incremental heads: %s", {h: m.rows_learnt_ for h, m in learnt.items()})
    return learnt


# Rows hashed at once: a bounded sparse matrix, whatever the size of the slices the file is read in.
LEARN_ROWS = 4096


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
