"""Scoring two bundles on tickets that neither has seen: what the promotion gate compares.

Why not simply each bundle's own holdout score: two runs with different exports or seeds
have different holdouts, and the champion's training rows can sit in the challenger's
holdout (the champion then looks better than it is). The split is a pure function of the
ticket text and ``(fractions, seed)`` (:func:`training.pipeline.assign_splits`), so the
rows that are holdout under *both* bundles' splits are known from the text alone: neither
bundle was fitted or calibrated on them, whatever export each was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score

from triage.bundle import bundle_encoder_ref, split_of
from triage.encoder import CachedEncoder, load_encoder
from triage.predict import Triager

from .mapping import load_export, load_mapping
from .pipeline import DEFAULT_FRACTIONS, assign_splits

MIN_SHARED_ROWS = 30


def _triager(path: Path) -> Triager:
    """MiniLM bundles reuse the on-disk embedding cache (scoring re-embeds the export)."""
    ref = bundle_encoder_ref(path) or {}
    encoder = CachedEncoder(load_encoder(ref)) if ref.get("kind") == "minilm" else None
    return Triager.from_bundle(path, encoder=encoder)


def shared_holdout_rows(texts: Sequence[str], triagers: Sequence[Triager]) -> np.ndarray:
    """Indices of the rows every bundle's own split puts in its holdout."""
    keep = np.ones(len(texts), dtype=bool)
    for tri in triagers:
        keep &= assign_splits(texts, *split_of(tri.manifest, DEFAULT_FRACTIONS)) == "holdout"
    return np.flatnonzero(keep)


def shared_holdout_scores(
    bundles: Sequence[Path], data: Path, mapping: Path
) -> tuple[list[dict[str, float]], int]:
    """Macro-F1 per head of each bundle on the shared holdout rows of an export, and their count."""
    triagers = [_triager(Path(b)) for b in bundles]
    ds = load_export(data, load_mapping(mapping))
    rows = shared_holdout_rows(ds.texts, triagers)
    if len(rows) < MIN_SHARED_ROWS:
        return [{} for _ in triagers], int(len(rows))
    texts = [ds.texts[i] for i in rows]
    scores = []
    for tri in triagers:
        X = tri.features_for_texts(texts)
        per_head = {}
        for head, model in tri.models.items():
            labels = ds.labels.get(head)
            has = [j for j, i in enumerate(rows) if labels is not None and labels[i] is not None]
            if has:
                pred = model.predict(X.take(has))
                per_head[head] = float(
                    f1_score(
                        [labels[rows[j]] for j in has],
                        [str(p) for p in pred],
                        average="macro",
                        zero_division=0,
                    )
                )
        scores.append(per_head)
    return scores, int(len(rows))
