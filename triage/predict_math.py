"""scikit-learn's predict arithmetic for our fitted heads, without the per-call input checks.

A head scores one ticket through three or four linear models (LinearSVC on TF-IDF,
logistic regression on vectors, the calibrator). On one-row inputs scikit-learn
1.9's ``validate_data`` (array-namespace and dataframe detection, ``check_array``)
cost more than the arithmetic: about a third of a head's predict time in
``bench/profile_intake.py``. The inputs here are our own finite CSR matrices and
float arrays, so the checks have nothing to find. The arithmetic is scikit-learn's
own, step by step (``safe_sparse_dot`` + ``intercept_``, then ``expit`` or
``softmax``), so the numbers are the same to the last bit (tests/test_shared_tfidf.py).

The same holds for the TF-IDF transform (:func:`tfidf_transform`): counting, sublinear tf,
IDF weights and the L2 norm as ``TfidfVectorizer.transform`` does them.

Only the exact classes below take the short path; anything else (a subclass, an
old bundle's pipeline) is asked through its public method as before.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, NamedTuple

import numpy as np
from scipy.special import expit
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l1, inplace_csr_row_normalize_l2

_LINEAR = (LinearSVC, LogisticRegression)


def decision_function(model: Any, X: Any) -> np.ndarray:
    """``model.decision_function(X)``, computed as scikit-learn does, minus validation."""
    if type(X) is RowBlock:
        if type(model) not in _LINEAR:
            return model.decision_function(X.tocsr())
        return _row_decision(model, X)
    if type(model) not in _LINEAR:
        return model.decision_function(X)
    coef = model.coef_
    if type(X) is np.ndarray and X.ndim == 2 and coef.ndim == 2:  # what safe_sparse_dot does
        scores = X @ coef.T + model.intercept_
        return scores.reshape(-1) if scores.shape[1] == 1 else scores
    scores = safe_sparse_dot(X, coef.T if coef.ndim == 2 else coef, dense_output=True) + model.intercept_
    return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores


def _row_decision(model: Any, row: "RowBlock") -> np.ndarray:
    """``decision_function`` of one text's row without a sparse matrix: scipy's CSR × dense
    product accumulates, per non-zero in column order, ``value × coef[:, column]`` into a
    float64 zero vector; an accumulation along the same terms adds them in that order, so the
    scores are the same to the last bit (tests/test_shared_tfidf.py).

    The weights' rows of the text's columns are taken as one block (``take`` on ``coef.T``:
    liblinear's ``coef_`` is Fortran-ordered, so these rows are contiguous), multiplied in
    place and accumulated down the terms: the same products, added in the same order."""
    coef = model.coef_
    coef = coef.reshape(1, -1) if coef.ndim == 1 else coef
    dtype = np.result_type(row.data.dtype, coef.dtype)
    if len(row.indices):
        terms = coef.T.take(row.indices, axis=0)  # (terms, classes): a fresh array of its own
        if terms.dtype != dtype:
            terms = terms.astype(dtype)
        terms *= row.data[:, None]  # (the values upcast to ``dtype``, exactly, as a cast first would)
        scores = np.add.accumulate(terms, axis=0)[-1:] + model.intercept_  # np.cumsum's loop
    else:
        scores = np.zeros((1, coef.shape[0]), dtype=dtype) + model.intercept_
    return scores.reshape(-1) if scores.shape[1] == 1 else scores


def predict_proba(model: Any, X: Any) -> np.ndarray:
    """``model.predict_proba(X)`` for a logistic regression: expit (binary) or softmax."""
    if type(model) is not LogisticRegression:
        return model.predict_proba(X)
    decision = decision_function(model, X)
    if len(model.classes_) <= 2:
        prob = expit(decision, out=decision)
        return np.stack([1 - prob, prob], axis=1)
    return softmax_rows(decision)


def softmax_rows(X: np.ndarray) -> np.ndarray:
    """``sklearn.utils.extmath.softmax(X, copy=False)`` for a NumPy array: the same operations
    in the same order (row max subtracted, exp in place, divided by the row sums), without its
    array-namespace detection (a third of the calibrator's time on one row)."""
    X -= X.max(axis=1).reshape((-1, 1))  # (the methods: the same reductions, fewer wrappers)
    np.exp(X, out=X)
    X /= np.add.reduce(X, axis=1).reshape((-1, 1))  # X.sum(axis=1), one wrapper fewer
    return X


def tfidf_transform(vectorizer: Any, texts: list[str], counted: list[Counter] | None = None) -> Any:
    """``vectorizer.transform(texts)`` for a fitted ``TfidfVectorizer``, minus validation.

    The steps of scikit-learn 1.9's ``CountVectorizer._count_vocab`` (fixed vocabulary)
    and ``TfidfTransformer.transform``, in their order and dtypes. ``counted``: per text,
    the counts of the vectorizer's analyzer output (:func:`analyse`), when the caller
    already has them (vectorizers that analyse alike share one analysis).
    """
    if not counts_apply(vectorizer):
        return vectorizer.transform(texts)
    if counted is None:
        counted = analyse(vectorizer.build_analyzer(), texts)
    indices, counts, indptr = lookup_counts(vectorizer.vocabulary_, counted)
    return tfidf_from_counts(
        vectorizer,
        np.asarray(counts, dtype=np.intc),
        np.asarray(indices, dtype=np.int32),
        np.asarray(indptr, dtype=np.int32),
    )


def lookup_counts(columns: dict[str, int], counted: list) -> tuple[list[int], list[int], list[int]]:
    """(columns, counts, row pointers) of each text's counted features found in ``columns``
    (a vocabulary, or the union of several): the CSR parts before any dtype is chosen."""
    indices: list[int] = []
    counts: list[int] = []
    indptr = [0]
    for features in counted:
        for feature, n in features.items():
            j = columns.get(feature)
            if j is not None:
                indices.append(j)
                counts.append(n)
        indptr.append(len(indices))
    return indices, counts, indptr


def tfidf_from_counts(vectorizer: Any, counts: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> Any:
    """The rest of :func:`tfidf_transform` once the texts' term counts are known: ``counts``
    (intc) of vocabulary columns ``indices`` (int32, unique within a row, any order) per row
    of ``indptr`` (int32)."""
    norm = vectorizer.norm
    X = sparse.csr_matrix(
        (counts, indices, indptr),
        shape=(len(indptr) - 1, len(vectorizer.vocabulary_)),
        dtype=vectorizer.dtype,
    )
    X.sort_indices()
    if vectorizer.binary:
        X.data.fill(1)
    if vectorizer.sublinear_tf:
        np.log(X.data, X.data)
        X.data += 1.0
    if vectorizer.use_idf:
        X.data *= vectorizer.idf_[X.indices]
    if norm == "l2":
        inplace_csr_row_normalize_l2(X)
    elif norm == "l1":
        inplace_csr_row_normalize_l1(X)
    return X


class RowBlock(NamedTuple):
    """One text's TF-IDF block before any sparse matrix is built (:func:`hstack_csr` builds one
    per head from its blocks): sorted int32 columns, their values, the block's width.

    A one-row ``csr_matrix`` costs more to construct (format checks, index dtype choice)
    than the arithmetic of a ticket's ~100 terms; a head reading two blocks built three."""

    indices: np.ndarray
    data: np.ndarray
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        return (1, self.width)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def tocsr(self) -> Any:
        return _csr(self)


class _OneRow(NamedTuple):
    """What scikit-learn's in-place row normalisers read of a CSR matrix."""

    data: np.ndarray
    shape: tuple[int, int]
    indices: np.ndarray
    indptr: np.ndarray


def tfidf_row(vectorizer: Any, counts: np.ndarray, indices: np.ndarray) -> RowBlock:
    """:func:`tfidf_from_counts` for one text, as a :class:`RowBlock`: the same steps on the
    same arrays (counts cast to the vectorizer's dtype, columns sorted, sublinear tf, IDF,
    scikit-learn's own row normaliser), so the values are the same to the last bit."""
    order = indices.argsort()  # columns are unique: every sort gives this order
    indices = indices[order]
    data = counts[order].astype(vectorizer.dtype)
    if vectorizer.binary:
        data.fill(1)
    if vectorizer.sublinear_tf:
        np.log(data, data)
        data += 1.0
    if vectorizer.use_idf:
        data *= vectorizer.idf_[indices]
    width = len(vectorizer.vocabulary_)
    if vectorizer.norm in ("l1", "l2") and len(data):
        normalise = inplace_csr_row_normalize_l2 if vectorizer.norm == "l2" else inplace_csr_row_normalize_l1
        normalise(_OneRow(data, (1, width), indices, np.array([0, len(indices)], dtype=indices.dtype)))
    return RowBlock(indices, data, width)


def counts_apply(vectorizer: Any) -> bool:
    """Can :func:`tfidf_from_counts` finish this vectorizer's transform?"""
    return type(vectorizer) is TfidfVectorizer and getattr(vectorizer, "norm", None) in (None, "l1", "l2")


def analyse(analyze: Callable[[str], list], texts: list[str]) -> list[Counter]:
    """Per text, how often each feature of ``analyze`` (a ``build_analyzer()``) occurs."""
    return [Counter(analyze(doc)) for doc in texts]


class WordNgramIds:
    """A ``char_wb`` analysis looked up in a vocabulary one word at a time, each distinct word
    analysed once per process.

    ``char_wb`` n-grams never cross a word (scikit-learn's ``_char_wb_ngrams`` pads each
    whitespace-separated word and slices it), so a text's n-gram counts are the sums of its
    words' n-gram counts. scikit-learn builds every n-gram of every word in Python (~250 per
    ticket, 0.1-0.2 ms), then each is looked up in the vocabulary; ticket texts repeat the same
    few thousand words, so here a word's n-grams are made by scikit-learn's own method once,
    looked up once, and kept as the vocabulary ids they hit (with repeats). Summing integer
    counts in any order gives the same counts: the same features to the last bit
    (tests/test_shared_tfidf.py).

    At most ``max_words`` words are kept; the memo starts afresh when it is full (texts of
    another desk, or junk, cost what they did before, never more memory).
    """

    def __init__(self, vectorizer: Any, ids: dict[str, int], max_words: int = 20_000) -> None:
        self._decode = vectorizer.decode
        self._preprocess = vectorizer.build_preprocessor()
        self._ngrams = vectorizer._char_wb_ngrams  # scikit-learn's own: the same n-grams
        self._spaces = vectorizer._white_spaces
        self._ids = ids
        self._memo: dict[str, np.ndarray] = {}
        self._max_words = max_words

    @staticmethod
    def applies(vectorizer: Any) -> bool:
        return (
            type(vectorizer) is TfidfVectorizer
            and vectorizer.analyzer == "char_wb"
            and hasattr(vectorizer, "_char_wb_ngrams")
            and hasattr(vectorizer, "_white_spaces")
        )

    def word_ids(self, word: str) -> np.ndarray:
        found = self._memo.get(word)
        if found is None:
            ids = self._ids
            hits = [j for j in map(ids.get, self._ngrams(word)) if j is not None]
            found = np.array(hits, dtype=np.int64)
            if len(self._memo) >= self._max_words:
                self._memo.clear()
            self._memo[word] = found
        return found

    def lookup(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, counts, row pointers) as :func:`lookup_counts` of the analysis gives them
        (ids unique within a row; their order may differ, which no caller reads)."""
        all_ids: list[np.ndarray] = []
        all_counts: list[np.ndarray] = []
        indptr = [0]
        for doc in texts:
            text = self._spaces.sub(" ", self._preprocess(self._decode(doc)))
            hits = [self.word_ids(word) for word in text.split()]
            row = np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)
            ids, counts = np.unique(row, return_counts=True)
            all_ids.append(ids)
            all_counts.append(counts.astype(np.intc))
            indptr.append(indptr[-1] + len(ids))
        if len(texts) == 1:
            return all_ids[0], all_counts[0], np.array(indptr)
        return np.concatenate(all_ids), np.concatenate(all_counts), np.array(indptr)


# The parameters ``build_analyzer`` reads: equal values, equal features for any text.
_ANALYSIS_PARAMS = (
    "input",
    "encoding",
    "decode_error",
    "strip_accents",
    "lowercase",
    "preprocessor",
    "tokenizer",
    "analyzer",
    "stop_words",
    "token_pattern",
    "ngram_range",
)


def analysis_key(vectorizer: Any) -> str | None:
    """Vectorizers with equal keys turn a text into the same features (None: unknown kind)."""
    if type(vectorizer) is not TfidfVectorizer or callable(vectorizer.analyzer):
        return None
    params = vectorizer.get_params()
    return repr([params.get(name) for name in _ANALYSIS_PARAMS])


def hstack_blocks(blocks: list[Any]) -> Any:
    """A head's blocks side by side: one :class:`RowBlock` when the shared one-text path made
    them (no sparse matrix at all: :func:`decision_function` and the explanations read it),
    else :func:`hstack_csr`."""
    if any(type(b) is RowBlock for b in blocks):
        if len(blocks) == 1:
            return blocks[0]
        return _merge_rows(blocks)
    return hstack_csr(blocks)


def hstack_csr(blocks: list[Any]) -> Any:
    """``sparse.hstack(blocks, format="csr")`` for one-row CSR blocks in one step (the same
    entries in the same order, dtype upcast alike); scipy's own for anything else.

    Intake and classify transform one ticket at a time, and scipy's general stacking
    (block layout, index-dtype checks, several intermediate matrices) cost more than
    the rest of a head's sparse arithmetic for a single row."""
    if any(type(b) is RowBlock for b in blocks):
        return _csr(_merge_rows(blocks))
    if len(blocks) == 1 and type(blocks[0]) is sparse.csr_matrix and blocks[0].has_sorted_indices:
        return blocks[0]  # hstack of one block is a copy of it: nothing reads it mutably
    if len(blocks) < 2 or any(type(b) is not sparse.csr_matrix or b.shape[0] != 1 for b in blocks):
        return sparse.hstack(blocks, format="csr")
    return _stack_rows(blocks)


def _merge_rows(blocks: list[Any]) -> "RowBlock":
    """One-row blocks (RowBlocks or one-row CSR) as one RowBlock: columns offset by the
    widths before, values upcast as ``sparse.hstack`` does."""
    offset, indices, data = 0, [], []
    for b in blocks:
        if type(b) is RowBlock:
            indices.append(b.indices.astype(np.int32, copy=False) + np.int32(offset))
            data.append(b.data)
        else:
            lo, hi = b.indptr[0], b.indptr[1]
            indices.append(b.indices[lo:hi].astype(np.int32) + np.int32(offset))
            data.append(b.data[lo:hi])
        offset += b.shape[1]
    dtype = np.result_type(*(b.dtype for b in blocks))
    return RowBlock(np.concatenate(indices), np.concatenate(data).astype(dtype, copy=False), offset)


def _stack_rows(blocks: list[Any]) -> Any:
    offset, indices, data = 0, [], []
    for b in blocks:
        lo, hi = b.indptr[0], b.indptr[1]
        indices.append(b.indices[lo:hi].astype(np.int32) + np.int32(offset))
        data.append(b.data[lo:hi])
        offset += b.shape[1]
    if offset >= np.iinfo(np.int32).max:
        return sparse.hstack(blocks, format="csr")
    dtype = np.result_type(*(b.dtype for b in blocks))
    values = np.concatenate(data).astype(dtype, copy=False)
    columns = np.concatenate(indices)
    return sparse.csr_matrix(
        (values, columns, np.array([0, len(columns)], dtype=np.int32)), shape=(1, offset)
    )


def _csr(block: Any) -> Any:
    if type(block) is not RowBlock:
        return block
    indptr = np.array([0, len(block.indices)], dtype=block.indices.dtype)
    return sparse.csr_matrix((block.data, block.indices, indptr), shape=block.shape)
