from __future__ import annotations

import numpy as np
import pytest

from triage.encoder import CachedEncoder, HashingEncoder, load_encoder
from triage.errors import BundleError


def test_hashing_encoder_is_deterministic_and_normalised():
    enc = HashingEncoder(dim=64)
    a = enc.encode(["outlook will not start", "outlook will not start", "printer jam"])
    assert a.shape == (3, 64) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a[0], a[1])
    assert float(a[0] @ a[2]) < 0.5


def test_cached_encoder_reuses_vectors(tmp_path):
    calls = []

    class Counting(HashingEncoder):
        def encode(self, texts, **kw):
            calls.append(list(texts))
            return super().encode(texts, **kw)

    enc = CachedEncoder(Counting(dim=32), cache_dir=tmp_path)
    first = enc.encode(["a b", "c d", "a b"])
    again = enc.encode(["c d", "e f"])
    assert calls == [["a b", "c d"], ["e f"]]  # duplicates and cached texts not re-encoded
    assert np.allclose(first[1], again[0])


def test_unknown_encoder_kind_is_refused():
    with pytest.raises(BundleError, match="expected 'minilm' or 'hashing'"):
        load_encoder({"kind": "word2vec"})


@pytest.mark.slow
def test_minilm_encoder_loads_offline_and_ranks_sensibly():
    enc = load_encoder("minilm")
    v = enc.encode(
        [
            "I forgot my password and cannot log in",
            "reset my password please",
            "the printer on floor two is jammed",
        ]
    )
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2
