"""Loading the three things the service serves: the Triager, the KB index, the rules.

Kept apart from ``state`` so the contract with ``triage/`` (``Triager.from_bundle``,
``KnowledgeBase``, ``RuleSet.load``) is read in one place. The encoder is built
here and shared by the Triager and the KB through :class:`MemoEncoder`, so the
one ticket text a classify call needs for both is embedded once, not twice.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import sys
import threading
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from triage.cache_dir import cache_dir
from triage.encoder import DEFAULT_ENCODER, load_encoder

log = logging.getLogger("service.components")


class MemoEncoder:
    """Remembers the vectors of the last few hundred texts (thread-safe LRU).

    A classify call embeds the ticket for the classifier heads and again for the
    KB search; the second call is a dictionary hit. ``/v1/kb/suggest`` on every
    keystroke also repeats texts (backspace, retries).
    """

    def __init__(self, inner, size: int = 512) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.size = size
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def reference(self) -> dict:
        return self.inner.reference()

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing = []
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._memo.get(text)
                if hit is None:
                    missing.append(i)
                else:
                    self._memo.move_to_end(text)
                    out[i] = hit
        if missing:
            vecs = self.inner.encode([texts[i] for i in missing], batch_size=batch_size, progress=progress)
            with self._lock:
                for i, vec in zip(missing, vecs):
                    out[i] = vec
                    self._memo[texts[i]] = vec
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        return out

    def __getattr__(self, name: str) -> Any:  # e.g. max_tokens of the inner encoder
        return getattr(self.inner, name)


# --------------------------------------------------------------------- rules
def default_rules_path() -> str:
    return str(resources.files("triage") / "defaults" / "rules.yaml")


def load_rules(path: str | None):
    """``RuleSet.load`` raises ConfigError with file and line: a broken policy never serves."""
    from triage.rules import RuleSet

    path = path or default_rules_path()
    return RuleSet.load(path), path


# -------------------------------------------------------------------- bundle
def bundle_encoder_ref(bundle: Path) -> dict | None:
    """The encoder the bundle names (None when its manifest cannot be read: loading says why)."""
    from triage.bundle import bundle_encoder_ref as read_ref
    from triage.errors import BundleError

    try:
        return read_ref(bundle)
    except BundleError:
        return None


def serving_encoder(ref: dict | None, override: str | None) -> MemoEncoder:
    """The bundle's encoder, or a faster kind of the same model (``TRIAGE_ENCODER``)."""
    ref = dict(ref or DEFAULT_ENCODER)  # the Triager's own default
    if override == "minilm-onnx" and importlib.util.find_spec("onnxruntime") is None:
        log.warning(
            "TRIAGE_ENCODER=minilm-onnx but onnxruntime is not installed: serving %s", ref.get("kind")
        )
    elif override:
        ref["kind"] = override
    if ref.get("kind") == "minilm-onnx":  # one ONNX thread per BLAS thread the worker was given
        ref["threads"] = int(os.environ.get("OMP_NUM_THREADS") or 0)
    return MemoEncoder(load_encoder(ref))


def load_triager(bundle: Path, encoder_override: str | None = None, signing_key: str | None = None):
    """``Triager.from_bundle`` with our memoising encoder; returns (triager, encoder).

    With ``signing_key`` an unsigned or tampered bundle is refused before unpickling."""
    from triage.predict import Triager

    from .policy import PolicyTriager  # admins' thresholds/modes apply to every classify

    encoder = serving_encoder(bundle_encoder_ref(bundle), encoder_override)
    return PolicyTriager(Triager.from_bundle(bundle, encoder=encoder, signing_key=signing_key)), encoder


# ------------------------------------------------------------------------ KB
def kb_source(config: dict, bundle: Path) -> str | None:
    """TRIAGE_KB_PATH, else a KB index inside the bundle, else the demo articles."""
    if config.get("TRIAGE_KB_PATH"):
        return str(config["TRIAGE_KB_PATH"])
    for name in ("kb", "kb_index"):
        if (bundle / f"{name}.json").exists() and (bundle / f"{name}.npz").exists():
            return str(bundle / name)
    demo = Path(config.get("TRIAGE_DEMO_KB_PATH") or "data/demo/kb")
    return str(demo) if demo.exists() else None


def load_kb(config: dict, bundle: Path, encoder):
    """The KB index for ``encoder``: a saved index, or articles embedded once and cached."""
    from triage.kb import KBConfig, KnowledgeBase, content_hash, load_articles

    source = kb_source(config, bundle)
    if source is None:
        raise FileNotFoundError("no knowledge base: set TRIAGE_KB_PATH (JSON Lines or a Markdown folder)")
    src = Path(source)
    if src.with_suffix(".json").exists() and src.with_suffix(".npz").exists() and not src.is_dir():
        return with_threshold(KnowledgeBase.load(src), config.get("TRIAGE_KB_THRESHOLD")), source
    if encoder is None:
        raise FileNotFoundError("the KB needs the bundle's encoder, and the bundle names none")
    articles = load_articles(src)
    cache = cache_dir() / "kb"
    # keyed by content, not path: the same articles anywhere share one index, and temporary
    # copies (tests, re-deploys to a new folder) do not pile up new cache entries
    key = content_hash(
        list(articles), {"index": KBConfig().index_settings(), "encoder": encoder.inner.reference()}
    )[:16]
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{key}.lock", "w") as lock:  # one worker embeds, the others then load
        fcntl.flock(lock, fcntl.LOCK_EX)
        kb = KnowledgeBase.load_or_build(articles, encoder.inner, cache / key, progress=sys.stderr.isatty())
    return with_threshold(kb, config.get("TRIAGE_KB_THRESHOLD")), source


def with_threshold(kb, threshold):
    """Apply ``TRIAGE_KB_THRESHOLD`` when set (it is a scoring setting: no re-embedding)."""
    if threshold in (None, ""):
        return kb
    return kb.with_config(threshold=float(threshold))
