"""Batch embedding with the persistent cache (triage.embed_cache): only new texts are encoded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from triage.embed_cache import EmbeddingCache, embed, encoder_identity, text_key
from triage.encoder import CachedEncoder, HashingEncoder
from triage.kb import KBConfig, KnowledgeBase
from triage.articles import Article


class Counting:
    """A weightless encoder that records what it was asked to encode (and from which thread)."""

    def __init__(self, dim: int = 32, tag: str = "a", concurrent: bool = False) -> None:
        self.inner = HashingEncoder(dim)
        self.dim, self.name, self.tag = dim, f"counting-{tag}", tag
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        if concurrent:
            self.single_threaded = lambda: self  # may run batches side by side

    def encode(self, texts, *, batch_size=64, progress=False):
        with self._lock:
            self.calls.append(list(texts))
            self.threads.add(threading.current_thread().name)
        return self.inner.encode(texts)

    def reference(self) -> dict:
        return {"kind": "counting", "dim": self.dim, "tag": self.tag}

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def test_only_texts_the_cache_lacks_are_encoded_and_a_restart_keeps_them(tmp_path):
    enc = Counting()
    first = embed(["a b", "c d", "a b"], enc, cache=EmbeddingCache.for_encoder(enc, tmp_path))
    assert sorted(enc.encoded) == ["a b", "c d"]  # the duplicate once
    restarted = EmbeddingCache.for_encoder(enc, tmp_path)  # a new process opens the same file
    again = embed(["c d", "e f", "a b"], enc, cache=restarted)
    assert sorted(enc.encoded) == ["a b", "c d", "e f"]
    assert np.array_equal(first[1], again[0]) and np.array_equal(first[0], again[2])
    assert len(restarted) == 3


def test_the_cache_is_keyed_by_encoder_identity_too(tmp_path):
    a, b = Counting(tag="a"), Counting(tag="b")
    assert EmbeddingCache.for_encoder(a, tmp_path).path != EmbeddingCache.for_encoder(b, tmp_path).path
    embed(["same text"], a, cache=EmbeddingCache.for_encoder(a, tmp_path))
    embed(["same text"], b, cache=EmbeddingCache.for_encoder(b, tmp_path))
    assert a.encoded == b.encoded == ["same text"]  # b did not get a's vector


def test_identity_adds_the_weights_package_version():
    ident = encoder_identity(type("E", (), {"reference": lambda self: {"kind": "x", "package": "numpy"}})())
    assert ident["package_version"] == np.__version__


def test_concurrent_batches_give_the_sequential_vectors_in_order(tmp_path):
    texts = [f"ticket number {i} " + "word " * (i % 7) for i in range(100)]
    seq = embed(texts, Counting(), batch_size=8)
    par_enc = Counting(concurrent=True)
    par = embed(texts, par_enc, batch_size=8, workers=3)
    assert np.array_equal(seq, par)
    assert len(par_enc.calls) == 13 and all(t.startswith("embed") for t in par_enc.threads)
    assert all(len(c) <= 8 for c in par_enc.calls)


def test_batches_are_sorted_by_length_to_pad_less():
    enc = Counting()
    texts = ["x " * n for n in (9, 1, 5, 3, 7, 2)]
    embed(texts, enc, batch_size=2)
    assert [len(c[0].split()) for c in enc.calls] == [1, 3, 7]


def test_a_failing_batch_keeps_the_finished_ones_in_the_cache(tmp_path):
    class Failing(Counting):
        def encode(self, texts, **kw):
            if "boom" in texts:
                raise RuntimeError("encoder died")
            return super().encode(texts, **kw)

    enc = Failing()
    cache = EmbeddingCache.for_encoder(enc, tmp_path)
    with pytest.raises(RuntimeError):
        embed(["aa", "bb", "boom"], enc, cache=cache, batch_size=2)  # sorted: [aa bb] [boom]
    assert set(cache.get([text_key("aa"), text_key("bb"), text_key("boom")])) == {
        text_key("aa"),
        text_key("bb"),
    }


def test_cached_encoder_keeps_its_protocol(tmp_path):
    inner = Counting()
    enc = CachedEncoder(inner, cache_dir=tmp_path)
    assert enc.reference() == inner.reference() and enc.dim == 32 and enc.path.parent == tmp_path
    enc.encode(["one", "two"])
    enc.encode(["two", "three"])
    assert sorted(inner.encoded) == ["one", "three", "two"]


def test_kb_rebuild_after_an_edit_embeds_only_the_changed_articles_chunks(tmp_path):
    body = lambda i: " ".join(f"word{i}x{j}" for j in range(60))  # noqa: E731 - no two passages alike
    arts = [Article(f"a{i}", f"Article {i}", body(i), f"about {i}") for i in range(6)]
    enc = Counting(concurrent=True)
    cfg = KBConfig(chunk_words=20, max_body_chunks=2)
    KnowledgeBase.load_or_build(arts, CachedEncoder(enc, tmp_path / "cache"), tmp_path / "idx", cfg)
    assert len(enc.encoded) == 18  # 6 articles x (head + 2 passages)
    edited = [*arts[:5], Article("a5", "Article 5", "a new body " + body(9), "about 5")]
    enc.calls.clear()
    kb = KnowledgeBase.load_or_build(edited, CachedEncoder(enc, tmp_path / "cache"), tmp_path / "idx", cfg)
    # the edited article's head (it holds the body's start) and its 2 passages, nothing else
    assert len(enc.encoded) == 3 and all("word9x" in t for t in enc.encoded)
    assert kb.articles[5].body.startswith("a new body")
