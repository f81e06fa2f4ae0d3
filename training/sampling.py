"""A stratified sample of an export, so the expensive candidates fit in memory at 10 M rows.

``triage train --max-rows N`` keeps at most N rows of the export, drawn per class of one
head (the first trained) so every class keeps its share, and rare classes keep up to
``floor`` rows each rather than vanishing in a proportional draw: a class of 40 tickets
in 10 M would otherwise get 4 rows of a 1 M sample and fall below ``min_class_count``.
Rows without that head's label are sampled like a class of their own. Deterministic
for a seed; rows keep their export order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from training.mapping import Dataset


def stratified_rows(
    labels: Sequence[str | None], max_rows: int, *, seed: int = 0, floor: int = 50
) -> np.ndarray:
    """Sorted row indices: at most ``max_rows``, proportional per label, ``floor`` kept per label."""
    n = len(labels)
    if max_rows <= 0:
        raise ValueError(f"max_rows: expected a positive number, got {max_rows}")
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keys = np.asarray(["\x00none" if v is None else str(v) for v in labels], dtype=object)
    classes, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    base = np.minimum(counts, floor)  # what every class keeps at least
    if base.sum() >= max_rows:  # so many classes that the floors alone overflow: share them
        want = np.floor(base * max_rows / base.sum()).astype(int)
    else:  # the rest of the budget proportionally to what each class has beyond its floor
        extra = counts - base
        want = base + np.floor(extra * (max_rows - base.sum()) / extra.sum()).astype(int)
    chosen = [
        rng.choice(np.flatnonzero(inverse == c), size=int(want[c]), replace=False)
        for c in range(len(classes))
        if want[c] > 0
    ]
    return np.sort(np.concatenate(chosen))


def sample_dataset(data: Dataset, max_rows: int, head: str, *, seed: int = 0) -> Dataset:
    """``data`` cut to a stratified sample of ``max_rows`` rows (by ``head``'s labels)."""
    keep = stratified_rows(data.labels[head], max_rows, seed=seed)
    if len(keep) == len(data):
        return data
    pick = keep.tolist()
    counts = dict(
        data.counts,
        sampled={
            "max_rows": max_rows,
            "by": head,
            "seed": seed,
            "rows_before": len(data),
            "rows_after": len(pick),
        },
    )
    return replace(
        data,
        texts=[data.texts[i] for i in pick],
        labels={h: [v[i] for i in pick] for h, v in data.labels.items()},
        metadata={k: [v[i] for i in pick] for k, v in data.metadata.items()},
        source_rows=[data.source_rows[i] for i in pick],
        counts=counts,
    )
