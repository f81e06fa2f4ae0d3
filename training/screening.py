"""Embeddings only where they can win: a screen on a sample before every row is embedded.

Embedding the training rows is the slowest step of a training run (47,837 tickets: ~4 min
of int8 MiniLM on an idle 2-core machine, before any model is fitted), and on exports where
TF-IDF wins anyway it buys nothing: the vector candidates (``embedding``, ``combined``) are
chosen only when they beat the simpler TF-IDF one by more than the selection's tie margin
(training.pipeline.TIE_MARGIN). So before embedding everything, each head's candidates are
fitted on a stratified sample of its train rows (``SCREEN_ROWS``, embedded through the same
cached encoder: nothing is embedded twice), and the vectors are computed for all rows only
if, on some head, a vector candidate beats TF-IDF there by at least ``min_gain``.

Why a sample can decide: sentence vectors carry what they learnt elsewhere, so they are
worth most when labelled rows are few; TF-IDF learns its vocabulary from the rows, and
closes the gap as they grow. A vector candidate that does not clear the margin on a few
thousand rows is not expected to clear it on all of them. The report records the screen
(``report["vector_screen"]``: per head, the sample's out-of-fold macro-F1 of each candidate),
so a surprising skip can be checked, and ``screen=False`` (``triage train --no-screen``)
embeds everything as before.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from triage.classifiers import Features, fit_candidates, macro_f1_idx

from .sampling import stratified_rows

log = logging.getLogger(__name__)

SCREEN_ROWS = 3000
# Below this many rows embedding everything costs about what the screen does: no screen.
SCREEN_MIN_ROWS = 8000
VECTOR_KINDS = ("embedding", "combined")


def screen_vectors(
    texts: Sequence[str],
    labels: Mapping[str, Sequence[str | None]],
    train_rows: np.ndarray,
    encoder: Any,
    *,
    min_gain: float,
    kinds: Sequence[str] = VECTOR_KINDS,
    rows: int = SCREEN_ROWS,
    seed: int = 0,
    **params: Any,
) -> dict:
    """Per head, the sample's out-of-fold macro-F1 of ``tfidf`` and each vector kind, and
    whether the vectors are worth computing for every row (``keep``)."""
    kinds = tuple(k for k in kinds if k in VECTOR_KINDS)
    heads: dict[str, dict] = {}
    cache: dict[int, np.ndarray] = {}
    for head, vals in labels.items():
        has = np.asarray([i for i in train_rows if vals[i] is not None], dtype=int)
        if len(has) < 50 or len({vals[i] for i in has}) < 2:
            continue
        pick = has[stratified_rows([vals[i] for i in has], rows, seed=seed, floor=10)]
        todo = [i for i in pick if i not in cache]
        if todo:  # every head's sample embedded once (and cached on disk by the encoder)
            cache.update(zip(todo, encoder.encode([texts[i] for i in todo])))
        y = np.asarray([str(vals[i]) for i in pick])
        X = Features([texts[i] for i in pick], np.vstack([cache[i] for i in pick]))
        fitted = fit_candidates(X, y, ("tfidf",) + kinds, cv=3, random_state=seed, **params)
        scores = {}
        for kind, model in fitted.items():
            y_idx = np.searchsorted(model.classes_, y)
            scores[kind] = round(macro_f1_idx(y_idx, model.oof_labels_, len(model.classes_)), 4)
        gain = max(scores[k] for k in kinds) - scores["tfidf"]
        heads[head] = {
            "rows": int(len(pick)),
            "oof_macro_f1": scores,
            "gain": round(gain, 4),
            "keep": bool(gain >= min_gain),
        }
        log.info("vector screen %s: %s (gain %+.4f)", head, scores, gain)
    return {
        "keep": any(h["keep"] for h in heads.values()) or not heads,
        "min_gain": min_gain,
        "rows_embedded": len(cache),
        "heads": heads,
        "rule": f"vectors computed for every row only if a vector candidate's out-of-fold "
        f"macro-F1 on a stratified sample of <= {rows} train rows beats tfidf by >= {min_gain}",
    }
