"""The int8 ONNX MiniLM gives the torch model's vectors (cosine >= 0.98), and is registered."""

from __future__ import annotations

import numpy as np
import onnxruntime  # noqa: F401 - a dependency: missing is an error, not a skip
import pytest

from triage import cache_dir

TEXTS = [
    "VPN keeps disconnecting every few minutes since this morning, cannot reach file shares.",
    "Please order a replacement USB-C charger for my laptop, the old one stopped working.",
    "Outlook: emails stay in the outbox and are never sent, customers are waiting.",
    "password reset",
    "Der Drucker im zweiten Stock druckt nur leere Seiten, bitte prüfen.",
    " ".join(["long ticket text about a failing database backup job"] * 40),  # truncated at 128
]


@pytest.mark.slow
def test_onnx_int8_matches_torch_minilm(tmp_path, monkeypatch):
    cache_dir.use(tmp_path)  # a fresh export (the autouse fixture resets it)
    from triage.encoder import MiniLMEncoder
    from triage.onnx_encoder import OnnxMiniLMEncoder

    onnx = OnnxMiniLMEncoder()
    fast = onnx.encode(TEXTS, batch_size=4)
    ref = MiniLMEncoder().encode(TEXTS)
    cosines = (fast * ref).sum(axis=1)
    assert fast.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert cosines.min() >= 0.98, cosines
    assert list((tmp_path / "onnx").rglob("model-int8-*.onnx")), "int8 graph not cached"
    # Dynamic int8 quantises activations with one scale per batch, so a text's vector
    # depends a little on its batch companions: alone or batched, it stays close to torch's.
    alone = onnx.encode(TEXTS[3:4])[0]
    assert float(alone @ ref[3]) >= 0.98 and float(alone @ fast[3]) >= 0.98


def test_load_encoder_knows_the_onnx_kind():
    from triage.encoder import load_encoder
    from triage.onnx_encoder import OnnxMiniLMEncoder

    enc = load_encoder({"kind": "minilm-onnx", "max_tokens": 128})
    assert isinstance(enc, OnnxMiniLMEncoder)
    assert enc.reference()["kind"] == "minilm-onnx"


def test_batch_work_gets_a_single_threaded_sibling_once():
    from triage.onnx_encoder import OnnxMiniLMEncoder

    enc = OnnxMiniLMEncoder(threads=0)
    one = enc.single_threaded()
    assert one.threads == 1 and one is enc.single_threaded() and one.single_threaded() is one
    assert one.reference() == enc.reference()  # same vectors: the same cache file


@pytest.mark.slow
def test_onnx_batches_on_two_threads_match_one_thread(tmp_path):
    from triage.embed_cache import embed
    from triage.onnx_encoder import OnnxMiniLMEncoder

    enc = OnnxMiniLMEncoder()
    texts = TEXTS * 3
    two, one = embed(texts, enc, batch_size=4, workers=2), embed(texts, enc, batch_size=4, workers=1)
    assert two.shape == (len(texts), 384) and (two * one).sum(axis=1).min() >= 0.9999


def test_a_bundle_naming_no_encoder_is_served_the_fast_default(tmp_path):
    """A TF-IDF-only bundle records no encoder; KB and duplicate search then use int8 ONNX,
    the kind `triage train` defaults to, not the 2-3x slower torch MiniLM."""
    from service.components import serving_encoder
    from triage.onnx_encoder import OnnxMiniLMEncoder
    from triage.predict import Triager

    assert isinstance(serving_encoder(None, None).inner, OnnxMiniLMEncoder)
    assert serving_encoder({"kind": "minilm"}, None).inner.reference()["kind"] == "minilm"  # named: kept
    tri = Triager.__new__(Triager)  # only the manifest matters to encoder()
    tri.manifest, tri._encoder = {"encoder": {}}, None
    assert isinstance(tri.encoder(), OnnxMiniLMEncoder)
