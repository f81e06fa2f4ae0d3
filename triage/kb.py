"""Knowledge-base search: chunked semantic index + lexical index, fused, with a threshold.

The service calls :meth:`KnowledgeBase.search` on every keystroke, so the search
itself is a few numpy operations (no per-article Python loop): a mat-vec over the
article centroids to pre-select candidates (an approximate ``triage.ann`` index instead
from ``ann_above`` articles), one over their chunks, a ``reduceat`` to aggregate chunks per article, and
(when fused) one sparse mat-vec for the lexical side. Well under a millisecond for the
2,446 shared articles. Articles are embedded once, in batches on every core through the
persistent embedding cache; the index saves to ``.npz`` + ``.json`` keyed by a content
hash so start-up does not re-embed.

The defaults (:class:`KBConfig`) are plain MiniLM, one vector per article: the chunked
and fused variants did not win on held-out folds (``bench/bench_kb_cv.py``).

Retrieval takes vectors, not models (``query_vec``): the encoder is used only in
:meth:`KnowledgeBase.build`, so tests run with the hashing encoder.

The score is meant to be comparable across queries (one threshold for all):
``score = semantic + lexical_weight * lexical`` where *semantic* blends the head
chunk's cosine with the best chunk's, and *lexical* is a TF-IDF cosine: both
bounded, neither normalised per query (per-query normalisation would make the
best article of an off-topic query look as good as a real answer).

The lexical index reads words in every script (``lexical_pattern``: letters of any script,
each CJK ideograph or kana a term), so a French, Russian or Chinese desk's articles and
queries match; on ASCII text its terms are exactly the ASCII-only pattern's it replaced. An
index saved before keeps its vocabulary; ``load_or_build`` rebuilds it once only if that lost
words (its articles hold letters outside ASCII), and an index given by path is served as is.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import sys
import tempfile
import threading
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from .ann import EXACT_BELOW, VectorIndex
from .articles import Article, content_hash, load_articles  # noqa: F401  (re-exported)
from .classifiers import CJK_CHARS
from .embed_cache import BATCH, EmbeddingCache, embed
from .errors import InputError
from .text import model_text

FORMAT_VERSION = 1


@dataclass(frozen=True)
class KBConfig:
    """Index and scoring settings, chosen by 5-fold cross-validation (``bench/bench_kb_cv.py``).

    The defaults are plain MiniLM: one vector per article (title + description + the first
    200 body words), cosine. Body passages, the head/passage blend, soft-max and lexical
    fusion all stay available, but chosen on 4 folds they beat plain MiniLM on only 3 of 5
    held-out folds (+0.019 nDCG@5, inside the fold spread), short of the rule fixed before
    the run (a gain on the mean and on at least 4 of 5 folds): see bench/kb_results.md.
    """

    chunk_words: int = 100  # ~128 word pieces: MiniLM's window
    max_body_chunks: int = 0  # body passages per article (0: the head text only)
    head_words: int = 200  # body words appended to the head chunk (title + description)
    head_weight: float = 1.0  # score = w * head cosine + (1 - w) * aggregate over all chunks
    aggregate: str = "max"  # "max" or "softmax" over an article's chunks
    temperature: float = 0.05  # softmax temperature (-> max as it goes to 0)
    lexical_weight: float = 0.0  # weight of the TF-IDF cosine added to the semantic score
    candidates: int = 100  # pre-select this many articles by centroid, then exact chunks (0: all)
    # From this many articles on, the centroid pre-selection asks an approximate index
    # (triage.ann.VectorIndex) instead of scanning every centroid; below it the scan is
    # exact and about as fast. Only the pre-selection is approximate: candidates are scored exactly.
    ann_above: int = EXACT_BELOW
    # Suggestions below this score are not shown. Chosen without the judged tickets: the 95th
    # percentile of the best score over 400 shared tickets from teams the KB cannot help
    # (Hardware, HR Support, Purchase), for these settings and the default encoder (int8 ONNX
    # MiniLM: 0.520; torch 0.522) -- bench/bench_kb.py, bench_kb_cv.py. Re-measure if scoring or the encoder changes.
    threshold: float = 0.52

    def index_settings(self) -> dict:
        """Only the settings that change the stored vectors (scoring ones do not)."""
        return {
            "chunk_words": self.chunk_words,
            "max_body_chunks": self.max_body_chunks,
            "head_words": self.head_words,
        }


@dataclass(frozen=True)
class Suggestion:
    article_id: str
    title: str
    score: float
    snippet: str
    attribution: str | None = None
    url: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# The query window: MiniLM reads 128 word pieces (~100 English words) and silently drops the
# rest, so a long query is cut here, by a rule a user can read, rather than by the tokenizer.
QUERY_WORDS = 100
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def query_window(text: str, max_words: int = QUERY_WORDS) -> tuple[str, bool]:
    """The part of a (normalised) query that is searched, and whether anything was cut.

    Rule: whole sentences from the start (the subject comes first in ``model_text``) while
    they fit in ``max_words`` words; a first sentence longer than that is cut at the word
    limit. Both the semantic and the lexical side read the same window.
    """
    words = text.split()
    if len(words) <= max_words:
        return text, False
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        n = len(sentence.split())
        if len(kept) + n > max_words:
            break
        kept += sentence.split()
    if not kept:
        kept = words[:max_words]
    return " ".join(kept), True


def kb_query(subject: str | None, body: str | None) -> tuple[str, bool]:
    """The text a KB search reads for a ticket or a typed query, and whether it was cut.

    The tickets' own normalisation (:func:`triage.text.model_text`, which training reads
    through ``training.mapping`` too), then :func:`query_window`. Every KB caller (suggest,
    classify, the portal, the agent page) goes through this, so they cannot drift apart.
    """
    return query_window(model_text(subject, body))


def suggest(kb: "KnowledgeBase", encoder, text: str, k: int = 5, vector=None) -> list["Suggestion"]:
    """Suggestions for ``text`` (already :func:`model_text`-normalised) by the query-window rule.

    ``vector`` is the caller's embedding of the whole ``text`` (classify has one): it is
    reused when the window keeps the text whole, and the window is embedded otherwise.
    """
    window, cut = query_window(text)
    if not window.strip():
        return []
    if vector is None or cut:
        vector = encoder.encode([window])[0]
    return kb.search(window, vector, k=k)


def head_text(article: Article, body_words: int = 0) -> str:
    """Title + description (+ the first ``body_words`` words of the body)."""
    parts = [article.title, article.description]
    if body_words:
        parts.append(" ".join(article.body.split()[:body_words]))
    return ". ".join(p for p in parts if p)


def article_chunks(
    article: Article, chunk_words: int, max_body_chunks: int, head_words: int = 0
) -> list[str]:
    """Chunk 0 = title + description (+ the body's start); then body passages, titled."""
    words = article.body.split()
    chunks = [head_text(article, head_words)]
    for i in range(0, min(len(words), chunk_words * max_body_chunks), chunk_words):
        chunks.append(f"{article.title}: {' '.join(words[i : i + chunk_words])}")
    return chunks


def lexical_text(article: Article) -> str:
    """The text the lexical index reads: the title counts twice (it names the problem)."""
    return " ".join([article.title, article.title, article.description, " ".join(article.tags), article.body])


def query_text_for_lexical(text: str) -> str:
    return " ".join(text.lower().split())


# The lexical index's words, in every script: a whole run of word characters made only of
# letters (and the combining marks that spell Indic, Thai or decomposed Latin letters), at
# least two of them; each CJK ideograph or kana a term of its own, as the classifiers read
# them (CJK_CHARS). Runs holding a digit or "_" are no word ("x86", "win10", "foo_bar"), as
# before, so on ASCII text the terms are exactly the old pattern's, r"(?u)\b[a-zA-Z][a-zA-Z]+\b"
# (tests/test_kb_words.py checks it), and an English KB's scores do not move.
# The English stop words stay: they can only remove ASCII terms, and the few that are also
# French or German words ("de", "on", "an", "also", "will") are function words there too.
LEXICAL_WORDS = "letters-any-script-1"  # saved with an index; an index without it used the old pattern
_OLD_ASCII_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z]+\b"  # only to tell whether an older index is still exact


@functools.cache
def _marks() -> str:
    """A pattern for one combining mark (``re`` has no \\p{M}); built once per process.

    Two classes: ``re`` tests a class within the Basic Multilingual Plane by table lookup but
    one reaching past it range by range, which made the whole index three times slower to fit.
    """
    bmp: list[list[int]] = []
    astral: list[list[int]] = []
    # marks live in planes 0-2 and in plane 14's variation selectors; the planes between hold
    # none (nor any assigned character but CJK ideographs), so a fifth of the scan suffices
    for c in itertools.chain(range(0x30000), range(0xE0000, sys.maxunicode + 1)):
        if unicodedata.category(chr(c)).startswith("M"):
            ranges = bmp if c < 0x10000 else astral
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])

    def body(ranges: list[list[int]]) -> str:
        return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)

    return rf"[{body(bmp)}]|(?=[\U00010000-\U0010ffff])[{body(astral)}]"


@functools.cache
def lexical_pattern() -> str:
    mark, cjk = _marks(), CJK_CHARS
    # a word runs over word characters and marks, and a CJK character ends it; "++" does not
    # back off (a shorter match would end before a letter and fail anyway)
    not_after_word = rf"(?<![^\W{cjk}])(?<!{mark})"
    letters = rf"(?:[^\W\d_{cjk}]|{mark}){{2,}}+"
    not_before_word = rf"(?![^\W{cjk}])(?!{mark})"
    return rf"(?u){not_after_word}{letters}{not_before_word}|(?=\w)[{cjk}]"


def lexical_preprocess(text: str) -> str:
    """NFKC then casefold: full-width Latin, ligatures and decomposed accents read as the
    plain words a query types; both are the identity on ASCII bar lower-casing."""
    return unicodedata.normalize("NFKC", text).casefold()


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(
        sublinear_tf=True,
        stop_words="english",
        preprocessor=lexical_preprocess,  # replaces lowercase=True
        token_pattern=lexical_pattern(),
        min_df=1,
        dtype=np.float32,
    )


def _old_terms_are_current(articles: Sequence[Article]) -> bool:
    """Whether an index saved before LEXICAL_WORDS holds the terms today's pattern would read.

    ASCII articles read the same words under both patterns; others are compared term by term
    (a French or Chinese KB differs, an English one with curly quotes does not).
    """
    new = _vectorizer().build_analyzer()
    old = TfidfVectorizer(
        stop_words="english", lowercase=True, token_pattern=_OLD_ASCII_PATTERN
    ).build_analyzer()
    texts = (lexical_text(a) for a in articles)
    return all(old(t) == new(t) for t in texts if not t.isascii())


class KnowledgeBase:
    """The article index. Build with :meth:`build`, persist with :meth:`save` / :meth:`load`."""

    def __init__(
        self,
        articles: list[Article],
        chunk_vecs: np.ndarray,
        offsets: np.ndarray,
        lexical: TfidfVectorizer,
        lexical_matrix: sparse.csr_matrix,
        config: KBConfig,
        encoder_ref: dict,
        digest: str,
        _shared: "_Derived | None" = None,
    ) -> None:
        self.articles = articles
        self.chunk_vecs = np.ascontiguousarray(chunk_vecs, dtype=np.float32)
        self.offsets = offsets.astype(np.int64)
        self.lexical = lexical
        self.lexical_matrix = lexical_matrix.tocsr()
        self.config = config
        self.encoder_ref = encoder_ref
        self.digest = digest
        self.counts = np.diff(np.append(self.offsets, len(self.chunk_vecs)))  # chunks per article
        self.lexical_words: str | None = LEXICAL_WORDS  # None: loaded from an index saved before it
        # centroids and the approximate index depend on the vectors only: copies made by
        # with_config (other scoring settings) share them instead of recomputing
        self._derived = _shared or _Derived()

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        articles: Sequence[Article],
        encoder,
        config: KBConfig | None = None,
        *,
        batch_size: int = BATCH,
        progress: bool = False,
        cache: EmbeddingCache | None = None,
    ) -> "KnowledgeBase":
        """Embed every chunk once (the expensive part) and fit the lexical index.

        Chunks are embedded in batches on every core (``triage.embed_cache.embed``);
        with a ``cache`` (or a ``CachedEncoder``) only chunks it does not hold yet are.
        """
        config = config or KBConfig()
        articles = list(articles)
        if not articles:
            raise InputError("an empty knowledge base cannot be indexed")
        chunks = [
            article_chunks(a, config.chunk_words, config.max_body_chunks, config.head_words) for a in articles
        ]
        counts = np.array([len(c) for c in chunks])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        if cache is None and hasattr(encoder, "cache") and hasattr(encoder, "inner"):  # a CachedEncoder
            encoder, cache = encoder.inner, encoder.cache
        texts = [t for c in chunks for t in c]
        vecs = embed(texts, encoder, cache=cache, batch_size=batch_size, progress=progress, desc="KB chunks")
        lexical = _vectorizer()
        matrix = lexical.fit_transform([lexical_text(a) for a in articles])
        ref = encoder.reference()
        digest = content_hash(articles, {"index": config.index_settings(), "encoder": ref})
        return cls(articles, vecs, offsets, lexical, matrix, config, ref, digest).warm()

    def with_config(self, **changes) -> "KnowledgeBase":
        """The same index with other scoring settings (threshold, fusion weight, aggregation)."""
        new = replace(self.config, **changes)
        if new.index_settings() != self.config.index_settings():
            raise ValueError("chunking settings need a rebuild, not with_config")
        return KnowledgeBase(
            self.articles,
            self.chunk_vecs,
            self.offsets,
            self.lexical,
            self.lexical_matrix,
            new,
            self.encoder_ref,
            self.digest,
            self._derived,
        )

    # ----------------------------------------------------------------- search
    @property
    def centroids(self) -> np.ndarray:
        """One unit vector per article (mean of its chunks): the cheap first stage."""
        with self._derived.lock:
            if self._derived.centroids is None:
                c = np.add.reduceat(self.chunk_vecs, self.offsets, axis=0)
                self._derived.centroids = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-9)
            return self._derived.centroids

    @property
    def uses_ann(self) -> bool:
        """Whether the pre-selection asks the approximate index (a KB of ``ann_above`` articles or more)."""
        return bool(self.config.candidates) and len(self.articles) >= max(self.config.ann_above, 1)

    def ann_index(self) -> VectorIndex:
        """The centroids in a :class:`VectorIndex` keyed by article position (built once)."""
        centroids = self.centroids
        with self._derived.lock:
            if self._derived.ann is None:
                index = VectorIndex(centroids.shape[1], exact_below=max(self.config.ann_above, 1))
                with index.bulk():  # trained once on every centroid, in the background:
                    index.add(range(len(centroids)), centroids)  # the exact scan answers meanwhile
                self._derived.ann = index
            return self._derived.ann

    def warm(self) -> "KnowledgeBase":
        """Compute what the first search would (centroids; the ANN index starts building): load time."""
        if self.uses_ann:
            self.ann_index()
        else:
            _ = self.centroids
        return self

    def _preselect(self, q: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` articles whose centroid is nearest the query: exact scan, or the ANN index when large."""
        if self.uses_ann:
            return np.array([key for key, _ in self.ann_index().search(q, n)], dtype=np.int64)
        return np.argpartition(-(self.centroids @ q), n - 1)[:n]

    def _aggregate(self, sims: np.ndarray, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Blend the head chunk (the article's summary) with the best passage anywhere in it."""
        c = self.config
        if c.aggregate == "max":
            agg = np.maximum.reduceat(sims, offsets)
        else:
            summed = np.add.reduceat(np.exp((sims - 1.0) / c.temperature), offsets)
            agg = 1.0 + c.temperature * np.log(summed / counts)
        return c.head_weight * sims[offsets] + (1.0 - c.head_weight) * agg

    def semantic_scores(self, query_vec: np.ndarray) -> np.ndarray:
        """Per-article semantic score: max or soft-max of the chunk cosines (vectorised).

        With ``candidates`` set, only the best articles by centroid get their chunks
        scored (the rest score -1): a tenth of the arithmetic for the same top results.
        With one vector per article (the default) and no ANN index, the centroids are the
        vectors: one exact mat-vec is the whole search, and a pre-selection would only add.
        """
        q = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        n = self.config.candidates
        single = len(self.chunk_vecs) == len(self.articles) and not self.uses_ann
        if not n or n >= len(self.articles) or single:
            return self._aggregate(self.chunk_vecs @ q, self.offsets, self.counts)
        cand = self._preselect(q, n)
        counts = self.counts[cand]
        local_off = np.concatenate([[0], np.cumsum(counts)[:-1]])
        idx = np.repeat(self.offsets[cand] - local_off, counts) + np.arange(counts.sum())
        out = np.full(len(self.articles), -1.0, dtype=np.float32)
        out[cand] = self._aggregate(self.chunk_vecs[idx] @ q, local_off, counts)
        return out

    def lexical_scores(self, query_text: str) -> np.ndarray:
        q = self.lexical.transform([query_text_for_lexical(query_text)])
        if q.nnz == 0:
            return np.zeros(len(self.articles), dtype=np.float32)
        return np.asarray((self.lexical_matrix @ q.T).todense()).ravel()

    def scores(self, query_text: str, query_vec: np.ndarray) -> np.ndarray:
        """The fused, threshold-comparable score of every article for one query."""
        s = self.semantic_scores(query_vec)
        if self.config.lexical_weight:
            s = s + self.config.lexical_weight * self.lexical_scores(query_text)
        return s

    def ranked(self, query_text: str, query_vec: np.ndarray, k: int = 10) -> list[tuple[int, float]]:
        """Top ``k`` (article position, score), best first, with no threshold (for evaluation)."""
        s = self.scores(query_text, query_vec)
        k = min(k, len(s))
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [(int(i), float(s[i])) for i in top]

    def search(
        self, query_text: str, query_vec: np.ndarray, k: int = 5, threshold: float | None = None
    ) -> list[Suggestion]:
        """Suggestions at or above the relevance threshold, best first; often none."""
        if not query_text or not query_text.strip():
            return []
        cut = self.config.threshold if threshold is None else threshold
        out = []
        for i, score in self.ranked(query_text, query_vec, k):
            if score < cut:
                break
            a = self.articles[i]
            out.append(
                Suggestion(a.id, a.title, round(score, 4), self.snippet(i, query_vec), a.attribution, a.url)
            )
        return out

    def snippet(self, i: int, query_vec: np.ndarray, chars: int = 240) -> str:
        """The passage of article ``i`` closest to the query (the description for the head)."""
        a = self.articles[i]
        start = self.offsets[i]
        end = self.offsets[i + 1] if i + 1 < len(self.offsets) else len(self.chunk_vecs)
        best = int(np.argmax(self.chunk_vecs[start:end] @ np.asarray(query_vec).reshape(-1)))
        if best == 0 or not a.body:
            text = a.description or " ".join(a.body.split()[:40])
        else:
            w = self.config.chunk_words
            text = " ".join(a.body.split()[(best - 1) * w : best * w])
        return text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0] + " …"

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """``<path>.npz`` (vectors, lexical matrix) + ``<path>.json`` (articles, settings)."""
        base = Path(path)
        base.parent.mkdir(parents=True, exist_ok=True)
        m = self.lexical_matrix
        meta = {
            "format": FORMAT_VERSION,
            "digest": self.digest,
            "config": asdict(self.config),
            "encoder": self.encoder_ref,
            "articles": [a.to_dict() for a in self.articles],
            "vocabulary": sorted(self.lexical.vocabulary_, key=self.lexical.vocabulary_.get),
            "lexical_words": self.lexical_words,
        }
        _atomic_write(
            base.with_suffix(".npz"),
            lambda fh: np.savez(
                fh,
                chunk_vecs=self.chunk_vecs,
                offsets=self.offsets,
                idf=self.lexical.idf_,
                lex_data=m.data,
                lex_indices=m.indices,
                lex_indptr=m.indptr,
                lex_shape=np.array(m.shape),
            ),
        )
        _atomic_write(base.with_suffix(".json"), lambda fh: fh.write(json.dumps(meta).encode("utf-8")))

    @classmethod
    def load(cls, path: str | Path) -> "KnowledgeBase":
        base = Path(path)
        meta = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise InputError(
                "KB index format not supported",
                file=str(base),
                expected=FORMAT_VERSION,
                got=meta.get("format"),
            )
        z = np.load(base.with_suffix(".npz"))
        lexical = _vectorizer()
        lexical.vocabulary_ = {t: i for i, t in enumerate(meta["vocabulary"])}
        lexical.idf_ = z["idf"]
        matrix = sparse.csr_matrix(
            (z["lex_data"], z["lex_indices"], z["lex_indptr"]), shape=tuple(z["lex_shape"])
        )
        kb = cls(
            [Article.from_dict(a) for a in meta["articles"]],
            z["chunk_vecs"],
            z["offsets"],
            lexical,
            matrix,
            KBConfig(**meta["config"]),
            meta["encoder"],
            meta["digest"],
        )
        # An older index keeps its own vocabulary (read with the old ASCII pattern); queries are
        # read with today's, whose extra words it simply does not hold. load_or_build rebuilds it
        # when that loses words; a saved index given by path is served as it is.
        kb.lexical_words = meta.get("lexical_words")
        return kb.warm()

    @classmethod
    def load_or_build(
        cls,
        articles: Sequence[Article],
        encoder,
        path: str | Path,
        config: KBConfig | None = None,
        *,
        progress: bool = False,
    ) -> "KnowledgeBase":
        """Reuse the saved index when the articles, chunking and encoder are unchanged.

        A rebuild embeds through the on-disk vector cache keyed by each chunk's text,
        so editing a few articles re-embeds only their chunks, not the whole KB.
        """
        config = config or KBConfig()
        digest = content_hash(
            list(articles), {"index": config.index_settings(), "encoder": encoder.reference()}
        )
        base = Path(path)
        if base.with_suffix(".json").exists() and base.with_suffix(".npz").exists():
            try:
                kb = cls.load(base)
                if kb.digest == digest and kb.lexical_words != LEXICAL_WORDS:
                    if not _old_terms_are_current(kb.articles):
                        raise ValueError("lexical index read with the ASCII-only pattern")
                    kb.lexical_words = LEXICAL_WORDS
                    kb.save(base)  # so the comparison runs once
                if kb.digest == digest:
                    return kb.with_config(
                        **{k: v for k, v in asdict(config).items() if k not in config.index_settings()}
                    )
            except (OSError, ValueError, KeyError):
                pass  # a stale or damaged index is rebuilt, never trusted
        kb = cls.build(articles, encoder, config, progress=progress, cache=_cache_for(encoder))
        kb.save(base)
        return kb


@dataclass
class _Derived:
    """What is computed from the vectors on first use, shared by every scoring variant."""

    centroids: np.ndarray | None = None
    ann: VectorIndex | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _cache_for(encoder) -> EmbeddingCache | None:
    """The persistent vector cache of ``encoder`` (none for the weightless test encoder)."""
    from .encoder import HashingEncoder

    if isinstance(encoder, HashingEncoder) or hasattr(encoder, "cache"):  # a CachedEncoder brings its own
        return None
    return EmbeddingCache.for_encoder(encoder)


def _atomic_write(target: Path, write) -> None:
    """Write to a temporary file and rename, so a reader never sees half an index."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
