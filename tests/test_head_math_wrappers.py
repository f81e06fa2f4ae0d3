"""The heads' one-row arithmetic called without NumPy's Python wrappers gives the same bits.

``np.clip``, ``np.cumsum``, ``np.argsort`` and ``ndarray.sum`` are thin Python functions
around ufuncs and array methods; on a ticket's one-row arrays the wrappers cost more than the
sums, so serving calls what they call (triage/classifiers.py, triage/predict_math.py). These
compare the two spellings on edge values and on real-looking rows, to the last bit.
"""

from __future__ import annotations

import numpy as np

from triage import classifiers


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_clipped_is_np_clip_bit_for_bit():
    edges = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-13, 1e-12, 0.5, 1.0, 1.0000001, -3.0])
    rng = np.random.default_rng(7)
    for x in (edges, edges.reshape(1, -1), rng.random((3, 9)), rng.random((1, 4)).astype(np.float32)):
        for lo, hi in ((1e-12, 1.0), (1e-9, 1.0), (1e-6, 1 - 1e-6)):
            assert _same(classifiers._clipped(x, lo, hi), np.clip(x, lo, hi))


def _temper_before(proba: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _map_row_before(proba: np.ndarray, j: int, ab: tuple[float, float]) -> np.ndarray:
    """triage/classifiers.py's _map_confidence_row as it was, with np.clip and ndarray.sum."""
    proba = np.array(proba, dtype=float)
    row = proba[0]
    p = np.clip(row[j : j + 1].copy(), 1e-6, 1 - 1e-6)
    q = 1.0 / (1.0 + np.exp(-(ab[0] * np.log(p / (1 - p)) + ab[1])))
    row[j] = 0.0
    rest = float(proba.sum(axis=1)[0])
    q_value = float(q[0])
    if rest > 0:
        row *= (1.0 - q_value) / rest
    else:
        row *= 0.0
        if rest <= 0 and len(row) > 1:
            row[:] = (1.0 - q_value) / (len(row) - 1)
    row[j] = q_value
    return proba


def test_temper_logit_and_confidence_map_unchanged():
    rng = np.random.default_rng(11)
    for k in (2, 3, 5, 12):
        for _ in range(50):
            raw = rng.dirichlet(np.full(k, 0.3)).reshape(1, -1)
            raw[0, rng.integers(k)] = 0.0 if rng.random() < 0.2 else raw[0, 0]
            for t in (0.5, 0.83, 1.7):
                assert _same(classifiers._temper(raw, t), _temper_before(raw, t))
            p = np.clip(raw, 1e-6, 1 - 1e-6)
            assert _same(classifiers._logit(raw), np.log(p / (1 - p)))
            j = int(raw.argmax())
            assert _same(
                classifiers._map_confidence_row(raw, j, (0.8, 0.1)), _map_row_before(raw, j, (0.8, 0.1))
            )


def test_row_decision_and_softmax_unchanged():
    from triage import predict_math

    rng = np.random.default_rng(3)
    for _ in range(50):
        terms = rng.normal(size=(int(rng.integers(1, 200)), 6))
        assert _same(terms.cumsum(axis=0), np.cumsum(terms, axis=0))
        x = rng.normal(size=(1, 6))
        before = x.copy()
        before -= before.max(axis=1).reshape((-1, 1))
        np.exp(before, out=before)
        before /= before.sum(axis=1).reshape((-1, 1))
        assert _same(predict_math.softmax_rows(x.copy()), before)
        contrib = rng.normal(size=150)
        contrib[::7] = 0.0  # ties: the same (quicksort) order either way
        assert _same((-contrib).argsort(), np.argsort(-contrib))


def test_trusted_inputs_are_entered_once_and_left_as_found():
    """Triager.classify skips scikit-learn's input checks; inside a context that already skips
    them (the service's request path) it enters no second one, and either way the settings
    are what they were afterwards."""
    import contextlib

    import sklearn

    from triage.predict import _trusted_inputs

    before = sklearn.get_config()
    with _trusted_inputs():
        inside = sklearn.get_config()
        assert inside["assume_finite"] and inside["skip_parameter_validation"]
        assert isinstance(_trusted_inputs(), contextlib.nullcontext)
    assert sklearn.get_config() == before
    with sklearn.config_context(assume_finite=True):  # only one of the two: a real context
        assert not isinstance(_trusted_inputs(), contextlib.nullcontext)
