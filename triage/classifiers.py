"""The classification heads: TF-IDF, sentence-embedding and combined, all calibrated.

Every head reads one :class:`Features` batch (the ``model_text`` strings plus, for
heads that need them, their sentence vectors encoded once per batch) and outputs
calibrated probabilities whose columns follow ``classes_``.

How the probabilities are calibrated, and why this way: each base model
(a LinearSVC on word+char TF-IDF, a logistic regression on MiniLM vectors) is
cross-fitted on the training split (``cv`` folds), as ``CalibratedClassifierCV
(ensemble=False)`` does, giving out-of-fold scores for every training row. A
multinomial logistic regression fitted on those out-of-fold scores maps them to
probabilities: for one base model that is multi-class Platt (matrix) scaling,
for both at once it is a stacking ensemble that learns how much to trust each.
The three candidates share the same folds, so comparing them costs one set of
fits instead of three.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from triage import predict_math

# simplest first: on a tie in selection the earlier kind wins (see training.pipeline)
KINDS = ("reference", "reference_bias", "tfidf", "embedding", "combined")
# the reference's own LinearSVC and features; ``reference_bias`` only tunes its decision rule
REFERENCE_KINDS = ("reference", "reference_bias")
_MISSING_SCORE = -10.0  # score of a class absent from one fold's training rows


@dataclass
class Features:
    """One batch of model inputs: texts (always) and their sentence vectors (when needed)."""

    texts: list[str]
    vectors: np.ndarray | None = None
    # context tokens per ticket (triage.features): channel, tier, service, requester history
    context: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: Sequence[int] | np.ndarray) -> "Features":
        idx = np.asarray(idx, dtype=int)
        vecs = None if self.vectors is None else self.vectors[idx]
        ctx = None if self.context is None else [self.context[i] for i in idx]
        return Features([self.texts[i] for i in idx], vecs, ctx)

    def with_context(self, context: list[str] | None) -> "Features":
        return Features(self.texts, self.vectors, context)


# ``transform(vectorizer, texts)``: how serving turns texts into one TF-IDF block
Transform = Callable[[Any, list[str]], sparse.spmatrix]
CONTEXT_WEIGHT = 0.5  # a context token's value beside L2-normalised TF-IDF rows


def make_context_vectorizer() -> CountVectorizer:
    """Binary bag of context tokens (``channel=email``), kept apart from the text's n-grams."""
    return CountVectorizer(token_pattern=r"\S+", lowercase=False, binary=True, dtype=np.float32)


def _has_context(X: "Features") -> bool:
    return X.context is not None and any(X.context)


# Chinese and Japanese write no spaces: under scikit-learn's default pattern (\w\w+) a whole
# sentence is one term, unique per ticket, and a word TF-IDF of a Chinese export kept no term at
# all ("After pruning, no terms remain"). So each ideograph or kana is a term of its own (word
# bigrams then pair them); on text without them the terms are exactly the default's.
# (triage.kb's lexical index reads words by the same rule: CJK_CHARS is shared.)
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
WORD_PATTERN = rf"(?u)[^\W{CJK_CHARS}]{{2,}}|[{CJK_CHARS}]"


def make_vectorizer(n_docs: int) -> FeatureUnion:
    """Word 1–2-grams + char_wb 2–5-grams; rare terms dropped once there is enough text."""
    min_df = 2 if n_docs >= 50 else 1
    return FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    ngram_range=(1, 2),
                    token_pattern=WORD_PATTERN,
                    min_df=min_df,
                    sublinear_tf=True,
                    max_df=0.9 if n_docs >= 50 else 1.0,
                    dtype=np.float32,
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), min_df=min_df, sublinear_tf=True, dtype=np.float32
                ),
            ),
        ]
    )


def make_reference_vectorizer() -> FeatureUnion:
    """The reference's features (TF-IDF word 1–2-grams), shaped like :func:`make_vectorizer`'s
    so the ``reference`` candidate explains itself the same way."""
    return FeatureUnion(
        [("word", TfidfVectorizer(ngram_range=(1, 2), token_pattern=WORD_PATTERN, sublinear_tf=True))]
    )


def make_reference_svc() -> LinearSVC:
    return LinearSVC(C=1.0, random_state=0)  # fixed seed: the candidate equals the reference


def make_reference() -> Pipeline:
    """The reference every report compares against: TF-IDF (1–2-grams) + LinearSVC."""
    return Pipeline([("tfidf", make_reference_vectorizer()), ("svc", make_reference_svc())])


def _scores(model: Any, X: Any, classes: np.ndarray, *, log_proba: bool) -> np.ndarray:
    """Scores in the full class order, whatever classes this model saw."""
    raw = (
        np.log(_clipped(predict_math.predict_proba(model, X), 1e-9, 1.0))
        if log_proba
        else predict_math.decision_function(model, X)
    )
    if raw.ndim == 1:  # binary LinearSVC: one column for classes_[1]
        raw = np.column_stack([-raw, raw])
    if len(model.classes_) == len(classes):  # saw every class (a subset as long: the same)
        return raw.astype(float)
    out = np.full((raw.shape[0], len(classes)), np.log(1e-9) if log_proba else _MISSING_SCORE)
    cols = np.searchsorted(classes, model.classes_)
    out[:, cols] = raw
    return out


def _folds(y: np.ndarray, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds when every class can be split; plain folds otherwise (tiny classes)."""
    _, counts = np.unique(y, return_counts=True)
    n_splits = max(2, min(cv, len(y)))
    if counts.min() >= n_splits:
        splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def _progress(items: Iterable, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


class TextHead(ClassifierMixin, BaseEstimator):
    """A calibrated head of one ``kind``: ``reference``, ``reference_bias`` (the reference's
    model with the tuned decision rule below), ``tfidf``, ``embedding`` or ``combined``.

    Two things are kept apart: the *label* a head reports and the *probabilities* the
    apply/suggest decisions read. The label is the arg-max of the calibrated log-probabilities
    plus a per-class bias tuned for macro-F1 on out-of-fold scores (``bias_``; a rare class
    needs less evidence to win than its prior allows), or, for the ``reference`` kind, exactly
    the plain LinearSVC's arg-max, so choosing the reference reproduces it. Either way the
    probability attached to the label is the calibrated one, with a top-label map on it
    (``confidence_map_``, :func:`fit_confidence_map`) since that is the number decisions read.

    Follows scikit-learn's contract (``__init__`` stores, ``fit`` returns self, fitted
    attributes end in ``_``, ``classes_`` = ``predict_proba`` columns), but ``X`` is a
    :class:`Features` batch because the combined head reads texts and vectors at once.
    """

    def __init__(
        self,
        kind: str = "tfidf",
        *,
        svc_c: float = 0.5,
        lr_c: float = 10.0,
        stack_c: float = 1.0,
        class_weight: str | None = None,
        cv: int = 5,
        random_state: int = 0,
        progress: bool = False,
    ) -> None:
        self.kind = kind
        self.svc_c = svc_c
        self.lr_c = lr_c
        self.stack_c = stack_c
        self.class_weight = class_weight
        self.cv = cv
        self.random_state = random_state
        self.progress = progress

    # -- fitting -----------------------------------------------------------------------
    @property
    def uses_text(self) -> bool:
        return self.kind in ("reference", "reference_bias", "tfidf", "combined")

    @property
    def uses_vectors(self) -> bool:
        return self.kind in ("embedding", "combined")

    def fit(self, X: Features, y: Sequence[Any]) -> "TextHead":
        if self.kind not in KINDS:
            raise ValueError(f"TextHead kind: expected one of {KINDS}, got {self.kind!r}")
        parts = fit_parts(X, y, kinds=(self.kind,), **self._part_params())
        return self._assemble(parts)

    def _part_params(self) -> dict:
        return dict(
            svc_c=self.svc_c,
            lr_c=self.lr_c,
            class_weight=self.class_weight,
            cv=self.cv,
            random_state=self.random_state,
            progress=self.progress,
        )

    def _assemble(self, parts: "Parts") -> "TextHead":
        self.classes_ = parts.classes
        if self.kind in REFERENCE_KINDS:
            self.vectorizer_, self.svc_ = parts.ref_vectorizer, parts.ref_svc
            oof = parts.oof_ref
        else:
            self.vectorizer_ = parts.vectorizer if self.uses_text else None
            self.svc_ = parts.svc if self.uses_text else None
            oof = None
        # the plain reference reads text only; the others read the context block when fitted
        self.context_ = parts.context if self.kind in ("tfidf", "combined") else None
        self.emb_ = parts.emb if self.uses_vectors else None
        self.knn_ = parts.knn if self.kind == "combined" else None
        if oof is None:
            oof = self._stack(
                [
                    parts.oof_svc if self.uses_text else None,
                    parts.oof_emb if self.uses_vectors else None,
                    parts.oof_knn if self.knn_ is not None else None,
                ]
            )
        # reference and reference_bias calibrate the same scores the same way: done once
        key = (
            "reference" if self.kind in REFERENCE_KINDS else self.kind,
            self.stack_c,
            self.cv,
            self.random_state,
        )
        if key not in parts.calibrated:
            calibrator, stacker_oof, name = self._choose_calibrator(oof, parts.y)
            temperature = _fit_temperature(stacker_oof, parts.y, calibrator.classes_)
            parts.calibrated[key] = (calibrator, stacker_oof, name, temperature)
        self.calibrator_, stacker_oof, self.calibration_, self.temperature_ = parts.calibrated[key]
        # honest probabilities for every training row: model selection on small data uses them
        self.oof_proba_ = _temper(stacker_oof, self.temperature_)
        if self.kind == "reference":  # the plain decision: arg-max of the LinearSVC's scores
            self.oof_labels_ = oof.argmax(axis=1)
            self.bias_ = None
        else:
            y_idx = np.searchsorted(self.classes_, parts.y)
            self.bias_ = fit_class_bias(self.oof_proba_, y_idx, len(self.classes_))
            # labels for selection: each half's bias fitted on the other half, so a candidate
            # with a tuned decision rule is not judged on the rows it was tuned on
            self.oof_labels_ = np.zeros(len(y_idx), dtype=int)
            half = np.random.default_rng(self.random_state).random(len(y_idx)) < 0.5
            for fit_rows in (half, ~half):
                b = fit_class_bias(self.oof_proba_[fit_rows], y_idx[fit_rows], len(self.classes_))
                self.oof_labels_[~fit_rows] = decide_labels(self.oof_proba_[~fit_rows], b)
        # the decisions read the reported label's probability: calibrate that one (top-label)
        self.confidence_map_ = fit_confidence_map(
            self.oof_proba_, self.oof_labels_, y_idx_of(self.classes_, parts.y)
        )
        self.oof_proba_ = map_confidence(self.oof_proba_, self.oof_labels_, self.confidence_map_)
        self.n_features_in_ = oof.shape[1]
        return self

    def _choose_calibrator(self, oof: np.ndarray, y: np.ndarray):
        """The calibrator with the lowest out-of-fold log-loss, from few parameters to many.

        A multinomial stacker has K × (blocks × K) weights: on a head with a few hundred
        rows it learns noise and comes out over-confident. The candidates are a single
        temperature on the scores (one parameter, single-score kinds only), a strongly
        regularised stacker and the ordinary one; each is judged on its own out-of-fold
        probabilities, so a flexible calibrator wins only when the rows support it.
        """
        makers: list[tuple[str, Any]] = []
        if self.kind != "combined":
            makers.append(("temperature", lambda: ScoreTemperature(log_proba=self.kind == "embedding")))
        makers += [
            (f"stack C={c:g}", lambda c=c: LogisticRegression(C=c, max_iter=2000))
            for c in sorted({self.stack_c / 100, self.stack_c})
        ]
        best = None
        for name, make in makers:
            held = self._stacker_oof(make, oof, y)
            loss = _log_loss(held, np.searchsorted(np.unique(y), y))
            if best is None or loss < best[0] - 1e-9:
                best = (loss, name, make, held)
        _, name, make, held = best
        return make().fit(oof, y), held, name

    def _stacker_oof(self, make, oof: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Out-of-fold probabilities of the calibrator itself (cheap: it has 1–3 × K inputs).

        With many classes and few rows the stacker overfits its inputs and comes out
        over-confident; a temperature fitted on these honest probabilities undoes that.
        """
        classes = np.unique(y)
        out = np.full((len(y), len(classes)), 1e-9)
        for tr, te in _folds(y, self.cv, self.random_state + 1):
            lr = make().fit(oof[tr], y[tr])
            p = lr.predict_proba(oof[te])
            if p.shape[1] == len(classes):  # a temperature scores every class, seen or not
                out[te] = p
            else:
                out[np.ix_(te, np.searchsorted(classes, lr.classes_))] = p
        return out / out.sum(axis=1, keepdims=True)

    @staticmethod
    def _stack(blocks: list[np.ndarray | None]) -> np.ndarray:
        return np.hstack([b for b in blocks if b is not None])

    # -- prediction --------------------------------------------------------------------
    def _tfidf(self, X: Features, transform: Transform | None = None) -> sparse.csr_matrix:
        """FeatureUnion.transform without its joblib plumbing (~2x faster for one ticket),
        plus the context block when the head was fitted with one."""
        return text_matrix(self.vectorizer_, getattr(self, "context_", None), X, transform)

    def _base_scores(self, X: Features, tfidf: sparse.spmatrix | None = None) -> np.ndarray:
        blocks: list[np.ndarray | None] = [None, None, None]
        if self.uses_text:
            tfidf = self._tfidf(X) if tfidf is None else tfidf
            blocks[0] = _scores(self.svc_, tfidf, self.classes_, log_proba=False)
        if self.uses_vectors:
            if X.vectors is None:
                raise ValueError(f"{self.kind} head: expected sentence vectors in Features, got None")
            blocks[1] = _scores(self.emb_, X.vectors, self.classes_, log_proba=True)
            if getattr(self, "knn_", None) is not None:
                blocks[2] = _scores(self.knn_, X.vectors, self.classes_, log_proba=True)
        if blocks[1] is None and blocks[2] is None and blocks[0] is not None:
            return blocks[0]  # TF-IDF heads: the one block (a fresh array) is the stack
        return self._stack(blocks)

    def predict_proba(self, X: Features) -> np.ndarray:
        return self._proba(X, None)[0]

    def predict_labelled(self, X: Features) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities and the column index of the reported label per row."""
        return self._proba(X, None)

    def _proba(self, X: Features, tfidf: sparse.spmatrix | None) -> tuple[np.ndarray, np.ndarray]:
        scores = self._base_scores(X, tfidf)
        proba = _temper(
            predict_math.predict_proba(self.calibrator_, scores), getattr(self, "temperature_", 1.0)
        )
        if len(self.calibrator_.classes_) == len(self.classes_):  # (fitted on every class)
            out = proba.astype(float)
        else:
            out = np.zeros((len(X), len(self.classes_)))
            out[:, np.searchsorted(self.classes_, self.calibrator_.classes_)] = proba
        if self.kind == "reference":
            picked = scores.argmax(axis=1)
        else:
            picked = decide_labels(out, getattr(self, "bias_", None))
        return map_confidence(out, picked, getattr(self, "confidence_map_", None)), picked

    def predict_explained(
        self, X: Features, k: int = 5, transform: Transform | None = None
    ) -> tuple[np.ndarray, list[list[dict]], np.ndarray]:
        """Probabilities, explanations of the reported label and its column index per row,
        vectorising the texts once. ``transform``: see :func:`text_matrix` (serving shares
        the TF-IDF blocks of identical vectorizers across heads)."""
        tfidf = self._tfidf(X, transform) if self.uses_text else None
        proba, idx = self._proba(X, tfidf)
        return proba, self.explain(X, self.classes_[idx], k, tfidf=tfidf), idx

    def predict(self, X: Features) -> np.ndarray:
        return self.classes_[self.predict_labelled(X)[1]]

    def explain(
        self, X: Features, labels: Sequence[Any], k: int = 5, tfidf: sparse.spmatrix | None = None
    ) -> list[list[dict]]:
        """Per ticket, the ``k`` terms that pushed hardest towards its label (TF-IDF part only).

        Contribution = the term's TF-IDF value × the LinearSVC weight for that class; heads
        without a TF-IDF part explain nothing (an empty list), rather than invent terms.
        """
        if not self.uses_text:
            return [[] for _ in range(len(X))]
        tfidf = self._tfidf(X) if tfidf is None else tfidf
        if type(tfidf) is predict_math.RowBlock:  # one text, from the shared path
            indptr = (0, len(tfidf.indices))
        else:
            if type(tfidf) is not sparse.csr_matrix:  # (constructing one from itself costs a check)
                tfidf = sparse.csr_matrix(tfidf)
            indptr = tfidf.indptr
        names, words = self._feature_names()
        out = []
        for row, label in enumerate(labels):
            coef = self._class_coef(str(label))
            lo, hi = indptr[row], indptr[row + 1]
            cols, vals = tfidf.indices[lo:hi], tfidf.data[lo:hi]
            contrib = vals * coef[cols] * words[cols]
            top = (-contrib).argsort()[:k]  # np.argsort's order, without its wrapper
            # Python ints and floats (the same values): indexing NumPy scalar by scalar cost
            # more than the arithmetic above
            out.append(
                [
                    {"term": str(names[c]).split("__", 1)[-1], "weight": round(w, 4)}
                    for c, w in zip(cols[top].tolist(), contrib[top].tolist())
                    if w > 0
                ]
            )
        return out

    def attach_examples(
        self, vectors: np.ndarray | None, y: Sequence[Any], ids: Sequence[Any], subjects: Sequence[str | None]
    ) -> None:
        """Remember which training tickets the head was fitted on, to cite them as reasons.

        Heads that read sentence vectors have no terms to show; the tickets nearest to the one
        being classified, with their labels, are what drove the vote (the combined head's
        neighbour vote literally; the embedding model's boundary in practice). ``vectors``,
        ``y``, ``ids`` and ``subjects`` are aligned with the rows the head was fitted on.
        """
        if not self.uses_vectors or vectors is None:
            return
        index = self.knn_ if getattr(self, "knn_", None) is not None else NeighbourVote().fit(vectors, y)
        self.examples_ = {
            "index": index,
            "ids": [str(i) for i in ids],
            "subjects": [(s or "")[:120] for s in subjects],
        }

    def explain_neighbours(self, X: Features, k: int = 3) -> list[list[dict]]:
        """Per ticket, the ``k`` nearest training tickets: id, subject, label, similarity."""
        ex = getattr(self, "examples_", None)
        if ex is None or X.vectors is None:
            return [[] for _ in range(len(X))]
        index = ex["index"]
        nn, sims = index.nearest(X.vectors, k)
        return [
            [
                {
                    "id": ex["ids"][j],
                    "subject": ex["subjects"][j],
                    "label": str(index.classes_[index.labels_[j]]),
                    "similarity": round(float(s), 4),
                }
                for j, s in zip(row, srow)
            ]
            for row, srow in zip(nn, sims)
        ]

    def _class_coef(self, label: str) -> np.ndarray:
        coef = self.svc_.coef_
        if coef.shape[0] == 1:  # binary: the row is for classes_[1]
            return coef[0] if label == str(self.svc_.classes_[1]) else -coef[0]
        rows = getattr(self, "_coef_rows", None)
        if rows is None:  # label -> row, built once per loaded head (first match, as .index())
            rows = {}
            for j, c in enumerate(map(str, self.svc_.classes_)):
                rows.setdefault(c, j)
            object.__setattr__(self, "_coef_rows", rows)
        j = rows.get(label)
        return coef[j] if j is not None else np.zeros(coef.shape[1])

    def _feature_names(self) -> tuple[np.ndarray, np.ndarray]:
        """Feature names and a 1/0 mask of word n-grams, built once per loaded head.

        Word n-grams read as reasons; char n-grams ("ilbo") do not, so only words are shown.
        """
        cached = getattr(self, "_names_cache", None)
        if cached is None:
            names = self.vectorizer_.get_feature_names_out().astype(str)
            words = np.char.startswith(names, "word__")
            # "is", "the", "please" carry weight but explain nothing to a reader
            readable = np.asarray([not set(n[6:].split()) <= ENGLISH_STOP_WORDS for n in names])
            mask = words & readable
            context = getattr(self, "context_", None)
            if context is not None:  # context tokens ("channel=email") read as reasons too
                extra = np.asarray([f"context__{n}" for n in context.get_feature_names_out()])
                names = np.concatenate([names, extra])
                mask = np.concatenate([mask, np.ones(len(extra), bool)])
            cached = (names, mask.astype(np.float32))
            object.__setattr__(self, "_names_cache", cached)
        return cached

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_names_cache", None)  # rebuilt on first explain(); keeps the joblib small
        state.pop("_coef_rows", None)
        state.pop("oof_proba_", None)  # training diagnostics only
        state.pop("oof_labels_", None)
        return state


def text_matrix(
    vectorizer: FeatureUnion,
    context: CountVectorizer | None,
    X: Features,
    transform: Transform | None = None,
) -> sparse.csr_matrix:
    """The sparse input of a head's LinearSVC: TF-IDF blocks, then context tokens (if any).

    ``transform(vectorizer, texts)`` replaces ``vectorizer.transform(texts)`` for the TF-IDF
    blocks: serving passes one that reuses the block of an identical vectorizer of another head.
    """
    blocks = [
        v.transform(X.texts) if transform is None else transform(v, X.texts)
        for _, v in vectorizer.transformer_list
    ]
    if context is not None:
        ctx = X.context if X.context is not None else [""] * len(X)
        blocks.append(context.transform(ctx) * CONTEXT_WEIGHT)
    # one-row blocks: stacked without scipy's general path (the shared path's: no matrix at all)
    return predict_math.hstack_blocks(blocks)


def predict_labelled(model: Any, X: Any) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, column of the reported label) for any head, old bundles included."""
    if hasattr(model, "predict_labelled"):
        return model.predict_labelled(X)
    proba = model.predict_proba(X)
    return proba, np.asarray(proba).argmax(axis=1)


# The per-class bias may trade the most probable label for a rarer one only when that one is
# plausible: at least this share of the top label's calibrated probability (odds at most 4:1).
# Macro-F1 rewards finding rare classes, but a label the model itself rates far below the top
# (HR Systems at 0.06 beside Network at 0.50) is a guess no agent would accept, and the
# apply/suggest decisions would read that low probability for it anyway.
BIAS_MIN_RATIO = 0.25


def decide_labels(
    proba: np.ndarray, bias: np.ndarray | None, min_ratio: float = BIAS_MIN_RATIO
) -> np.ndarray:
    """Column index of the reported label: arg-max of log-probability + per-class bias, among
    the labels whose probability is at least ``min_ratio`` × the top one's."""
    proba = np.asarray(proba, dtype=float)
    if bias is None or not np.any(bias):
        return proba.argmax(axis=1)
    return _biased_argmax(np.log(_clipped(proba, 1e-12, 1.0)), _plausible(proba, min_ratio), bias)


def _plausible(proba: np.ndarray, min_ratio: float) -> np.ndarray:
    """Which labels the bias may choose per row (the top one always)."""
    return proba >= min_ratio * proba.max(axis=1, keepdims=True)


def _biased_argmax(logp: np.ndarray, plausible: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.where(plausible, logp + bias, -np.inf).argmax(axis=1)


def macro_f1_idx(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro-F1 over the classes present in ``y`` or ``pred`` (integer labels; fast, for search)."""
    tp = np.bincount(y[pred == y], minlength=k).astype(float)
    n_true = np.bincount(y, minlength=k)
    n_pred = np.bincount(pred, minlength=k)
    present = (n_true + n_pred) > 0
    f1 = np.divide(2 * tp, n_true + n_pred, out=np.zeros(k), where=present)
    return float(f1[present].mean()) if present.any() else 0.0


BIAS_GRID = np.arange(-2.0, 2.01, 0.25)


def fit_class_bias(
    proba: np.ndarray,
    y: np.ndarray,
    k: int,
    passes: int = 2,
    min_gain: float = 1e-3,
    min_ratio: float = BIAS_MIN_RATIO,
) -> np.ndarray:
    """Per-class log-offsets that maximise macro-F1 of the biased arg-max (coordinate ascent).

    Calibrated probabilities maximise accuracy; macro-F1 rewards finding rare classes, so a
    rare class gets a positive offset when (and only when) that raises macro-F1 on these
    out-of-fold rows by at least ``min_gain``. Offsets stay within ±2 (a factor of ~7 in odds),
    and whatever the offsets, only labels within ``min_ratio`` of the top probability can be
    chosen (:data:`BIAS_MIN_RATIO`), so fitting and serving use the same rule.
    """
    proba = np.asarray(proba, dtype=float)
    logp = np.log(np.clip(proba, 1e-12, 1.0))
    plausible = _plausible(proba, min_ratio)
    bias = np.zeros(k)
    best = macro_f1_idx(y, logp.argmax(axis=1), k)
    for _ in range(passes):
        improved = False
        for j in range(k):
            keep = bias[j]
            for b in BIAS_GRID:
                bias[j] = b
                f = macro_f1_idx(y, _biased_argmax(logp, plausible, bias), k)
                if f > best + min_gain:
                    best, keep, improved = f, b, True
            bias[j] = keep
        if not improved:
            break
    return bias


def y_idx_of(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.searchsorted(classes, np.asarray(y).astype(str))


# Prior weight of the identity map (a=1, b=0) in pseudo-rows: a head with a few hundred rows
# moves its map only as far as its rows clearly ask.
CONFIDENCE_PRIOR_ROWS = 10.0


def _clipped(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.clip(x, lo, hi)``, bit for bit (the clip ufunc is max then min, NaN kept), without
    ``np.clip``'s Python wrappers: on a head's one-row arrays they cost more than the arithmetic
    (~5 us of ~6 per call), and serving clips ~10 times per ticket."""
    return np.minimum(np.maximum(x, lo), hi)


def _logit(p: np.ndarray) -> np.ndarray:
    p = _clipped(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_confidence_map(proba: np.ndarray, picked: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Top-label Platt scaling: ``q = sigmoid(a · logit(p) + b)`` for the reported label's
    probability ``p``, fitted on out-of-fold rows by log-loss of "the reported label is right".

    The multi-class calibrator fits the whole distribution; what apply/suggest and the ECE read
    is one number, the reported label's probability, which the per-class bias (a label other
    than the arg-max) and many classes leave over-confident (slopes 0.55–0.9 out of fold on the
    shared and demo heads). Two parameters, pulled towards the identity by
    ``CONFIDENCE_PRIOR_ROWS``, so small heads stay near where the calibrator put them.
    """
    from scipy.optimize import minimize

    z = _logit(np.asarray(proba)[np.arange(len(picked)), picked])
    right = (np.asarray(picked) == np.asarray(y)).astype(float)
    n = max(len(z), 1)

    def loss(ab: np.ndarray) -> float:
        t = ab[0] * z + ab[1]
        nll = np.logaddexp(0.0, t) - right * t  # -log sigmoid(t) if right, -log(1-sigmoid(t)) else
        return float(nll.mean() + CONFIDENCE_PRIOR_ROWS / n * 0.5 * ((ab[0] - 1) ** 2 + ab[1] ** 2))

    res = minimize(loss, np.asarray([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.05, 5.0), (-5.0, 5.0)])
    return (float(res.x[0]), float(res.x[1])) if res.success else (1.0, 0.0)


def map_confidence(proba: np.ndarray, picked: np.ndarray, ab: tuple[float, float] | None) -> np.ndarray:
    """``proba`` with the reported label's probability mapped by :func:`fit_confidence_map`'s
    ``(a, b)``; the other labels share the rest in their old proportions (order kept)."""
    if ab is None or tuple(ab) == (1.0, 0.0) or len(picked) == 0:
        return proba
    if len(picked) == 1:
        return _map_confidence_row(proba, int(picked[0]), ab)
    proba = np.array(proba, dtype=float)
    rows = np.arange(len(picked))
    p = proba[rows, picked]
    q = 1.0 / (1.0 + np.exp(-(ab[0] * _logit(p) + ab[1])))
    proba[rows, picked] = 0.0
    rest = proba.sum(axis=1)
    spread = np.where(rest > 0, (1.0 - q) / np.where(rest > 0, rest, 1.0), 0.0)
    proba *= spread[:, None]
    even = (rest <= 0) & (proba.shape[1] > 1)  # nothing left to share in proportion: evenly
    proba[even] = ((1.0 - q[even]) / (proba.shape[1] - 1))[:, None]
    proba[rows, picked] = q
    return proba


def _map_confidence_row(proba: np.ndarray, j: int, ab: tuple[float, float]) -> np.ndarray:
    """:func:`map_confidence` of one row (intake and classify), the same arithmetic: the
    exp/log on the same one-element array and the same row sum; what is only IEEE division
    and multiplication is done on Python floats, the NumPy fancy indexing left out."""
    proba = np.array(proba, dtype=float)
    row = proba[0]
    q = 1.0 / (1.0 + np.exp(-(ab[0] * _logit(row[j : j + 1].copy()) + ab[1])))
    row[j] = 0.0
    rest = float(np.add.reduce(proba, axis=1)[0])  # proba.sum(axis=1), without its wrapper
    q_value = float(q[0])
    if rest > 0:
        row *= (1.0 - q_value) / rest
    else:
        row *= 0.0
        if rest <= 0 and len(row) > 1:  # nothing left to share in proportion: evenly
            row[:] = (1.0 - q_value) / (len(row) - 1)
    row[j] = q_value
    return proba


class ScoreTemperature(ClassifierMixin, BaseEstimator):
    """One-parameter calibrator: softmax(scores / T), T fitted by log-loss.

    For heads with few rows, where a stacker's K × K weights would learn noise.
    ``log_proba`` scores (the embedding model's) are already log-probabilities.
    """

    def __init__(self, log_proba: bool = False) -> None:
        self.log_proba = log_proba

    def fit(self, scores: np.ndarray, y: Sequence[Any]) -> "ScoreTemperature":
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        s = np.asarray(scores, dtype=float)
        # SVC margins are ~±1: the scale may need to reach ~50, beyond the stacker's range
        self.temperature_ = _fit_temperature(_softmax(s), y, self.classes_, bounds=(-4.0, 3.0))
        return self

    def predict_proba(self, scores: np.ndarray) -> np.ndarray:
        return _softmax(np.asarray(scores, dtype=float) / self.temperature_)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_loss(proba: np.ndarray, y_idx: np.ndarray) -> float:
    return float(-np.log(np.clip(proba[np.arange(len(y_idx)), y_idx], 1e-12, 1.0)).mean())


def _temper(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of log-probabilities divided by a temperature: same argmax, other confidence."""
    if temperature == 1.0:
        return proba
    z = np.log(_clipped(proba, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / np.add.reduce(e, axis=1, keepdims=True)  # e.sum(...) without its wrapper


def _fit_temperature(
    proba: np.ndarray, y: np.ndarray, classes: np.ndarray, bounds: tuple[float, float] = (-2.0, 2.0)
) -> float:
    """The temperature minimising the log-loss of ``proba`` (temperature scaling)."""
    from scipy.optimize import minimize_scalar

    idx = np.searchsorted(classes, y)

    def nll(log_t: float) -> float:
        p = _temper(proba, float(np.exp(log_t)))[np.arange(len(y)), idx]
        return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())

    res = minimize_scalar(nll, bounds=bounds, method="bounded")
    return float(np.exp(res.x)) if res.success else 1.0


@dataclass
class Parts:
    """Fitted base models and their out-of-fold scores, shared by the candidate heads."""

    classes: np.ndarray
    y: np.ndarray
    vectorizer: FeatureUnion | None = None
    svc: LinearSVC | None = None
    emb: LogisticRegression | None = None
    oof_svc: np.ndarray | None = None
    oof_emb: np.ndarray | None = None
    knn: "NeighbourVote | None" = None
    oof_knn: np.ndarray | None = None
    context: CountVectorizer | None = None
    ref_vectorizer: FeatureUnion | None = None
    ref_svc: LinearSVC | None = None
    oof_ref: np.ndarray | None = None
    # (kind, stack_c, cv, seed) → (calibrator, its out-of-fold probabilities, name, temperature)
    calibrated: dict = field(default_factory=dict)


def fit_parts(
    X: Features,
    y: Sequence[Any],
    *,
    kinds: Sequence[str] = KINDS,
    svc_c: float = 0.5,
    lr_c: float = 10.0,
    class_weight: str | None = None,
    cv: int = 5,
    random_state: int = 0,
    progress: bool = False,
    n_jobs: int | None = None,
) -> Parts:
    """Fit each base model once, on all rows and cross-fitted for out-of-fold scores.

    ``n_jobs``: worker processes the independent fits of one base model (its folds and the
    all-rows fit) share; None = the cores this process may use (:func:`fit_jobs`). The results
    do not depend on it: every fit has its own fixed seed (see :func:`_cross_fit`)."""
    y = np.asarray([str(v) for v in y])
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"a head needs at least 2 classes, got {list(classes)}")
    parts = Parts(classes=classes, y=y)
    folds = _folds(y, cv, random_state)
    jobs = fit_jobs() if n_jobs is None else max(1, n_jobs)
    started: dict[str, Future] = {}
    # the next model's TF-IDF vocabulary is built while the previous model's folds fit
    with _fit_pool(jobs) as pool:
        if any(k in REFERENCE_KINDS for k in kinds):
            parts.ref_vectorizer = make_reference_vectorizer()
            R = parts.ref_vectorizer.fit_transform(X.texts)
            started["ref"] = pool.submit(_cross_fit, make_reference_svc, R, y, classes, folds, False, jobs)
        if any(k in ("tfidf", "combined") for k in kinds):
            parts.vectorizer = make_vectorizer(len(X))
            if _has_context(X):
                parts.context = make_context_vectorizer().fit(X.context)
            T = text_matrix(parts.vectorizer, parts.context, X, _fit_transform)
            make = lambda: make_tfidf_svc(svc_c, class_weight, random_state)  # noqa: E731
            started["svc"] = pool.submit(_cross_fit, make, T, y, classes, folds, False, jobs)
        if any(k in ("embedding", "combined") for k in kinds):
            if X.vectors is None:
                raise ValueError("embedding head: expected sentence vectors in Features, got None")
            make = lambda: LogisticRegression(C=lr_c, max_iter=2000, class_weight=class_weight)  # noqa: E731
            started["emb"] = pool.submit(_cross_fit, make, X.vectors, y, classes, folds, True, jobs)
        if "combined" in kinds:
            started["knn"] = pool.submit(_cross_fit, NeighbourVote, X.vectors, y, classes, folds, True, jobs)
        for key, future in _progress(list(started.items()), progress, "base models"):
            model, oof = future.result()
            setattr(parts, _CROSS_FITS[key], model)  # Parts' fields: the model, oof_<key>
            setattr(parts, f"oof_{key}", oof)
    return parts


# base model key → its Parts field (its out-of-fold scores: ``oof_<key>``)
_CROSS_FITS = {"ref": "ref_svc", "svc": "svc", "emb": "emb", "knn": "knn"}


def make_tfidf_svc(c: float, class_weight: str | None, random_state: int) -> LinearSVC:
    """The tfidf candidate's LinearSVC. Its seed is fixed: liblinear shuffles the rows it
    visits, so without one the out-of-fold scores (and a close selection) moved between runs."""
    return LinearSVC(C=c, class_weight=class_weight, random_state=random_state)


def _fit_transform(vectorizer: Any, texts: list[str]) -> sparse.spmatrix:
    """``fit`` then ``transform`` in one pass (they analysed the char n-grams of every text
    twice), with each row's columns sorted as ``transform`` leaves them: liblinear sums a
    row's terms in stored order, so the same values in another order could move a score."""
    M = vectorizer.fit_transform(texts)
    M.sort_indices()
    return M


def fit_jobs() -> int:
    """How many fits run side by side: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class NeighbourVote(ClassifierMixin, BaseEstimator):
    """Similarity-weighted vote of the ``k`` nearest training tickets (cosine on unit vectors).

    Help-desk exports are full of templated e-mails: a near-copy of a labelled ticket says
    more than any linear model of its words. On the shared team labels this vote alone
    reaches macro-F1 0.84 (MiniLM + logistic regression: 0.81) and, stacked with the TF-IDF
    and embedding models, lifts the combined head by ~0.005–0.01.
    """

    def __init__(self, k: int = 10, sharpness: float = 10.0, smoothing: float = 1e-3) -> None:
        self.k = k
        self.sharpness = sharpness
        self.smoothing = smoothing

    def fit(self, X: np.ndarray, y: Sequence[Any]) -> "NeighbourVote":
        y = np.asarray([str(v) for v in y])
        self.classes_ = np.unique(y)
        self.vectors_ = np.asarray(X, dtype=np.float16)  # half the bundle size, same neighbours
        self.labels_ = np.searchsorted(self.classes_, y).astype(np.int32)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        k = min(self.k, len(self.labels_))
        out = np.zeros((len(X), len(self.classes_)))
        train = self._train_f32()
        for start in range(0, len(X), 1024):
            sims = X[start : start + 1024] @ train.T
            nn = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            w = np.exp(self.sharpness * (np.take_along_axis(sims, nn, axis=1) - 1.0))
            rows = np.arange(nn.shape[0])[:, None] + start
            np.add.at(out, (rows, self.labels_[nn]), w)
        out /= out.sum(axis=1, keepdims=True)
        out += self.smoothing
        return out / out.sum(axis=1, keepdims=True)

    def nearest(self, X: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the ``k`` most similar training tickets per query, and their cosines."""
        X = np.asarray(X, dtype=np.float32)
        k = min(k, len(self.labels_))
        sims = X @ self._train_f32().T
        nn = np.argsort(-sims, axis=1)[:, :k]
        return nn, np.take_along_axis(sims, nn, axis=1)

    def _train_f32(self) -> np.ndarray:
        """float32 copy for BLAS, made once per loaded model and never pickled."""
        cached = self.__dict__.get("_f32")
        if cached is None:
            cached = self.__dict__["_f32"] = self.vectors_.astype(np.float32)
        return cached

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_f32", None)
        return state


# Serve the scale that was calibrated: see _match_fold_scale.
MATCH_FOLD_SCALE = True


class _Inline:
    """A pool of one that runs each job when submitted (``n_jobs=1``: strictly serial)."""

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable, *args: Any) -> Future:
        done: Future = Future()
        done.set_result(fn(*args))
        return done


def _fit_pool(n_jobs: int) -> Any:
    """Where the base models' cross-fits run: one after another, in one background thread
    (``n_jobs`` > 1), so the caller can build the next TF-IDF matrix meanwhile."""
    return _Inline() if n_jobs <= 1 else ThreadPoolExecutor(1)


def _cross_fit(make, M, y: np.ndarray, classes: np.ndarray, folds, log_proba: bool, n_jobs: int = 1):
    """The all-rows model and out-of-fold scores of one base model: cv + 1 independent fits.

    With ``n_jobs`` > 1 they run in that many worker processes (joblib's loky; the matrix is
    memory-mapped to them, not copied per fit). Processes, not threads: liblinear draws its
    coordinate order from one process-wide random generator, so two LinearSVC fits in one
    process at once would each see the other's draws and the scores would change from run to
    run. Each fit sets its own seed, so the results equal a serial loop's.
    """
    jobs: list = [None, *folds]  # the all-rows fit first: the longest should not start last
    if n_jobs <= 1:
        done = [_fit_job(make, M, y, classes, job, log_proba) for job in jobs]
    else:
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=min(n_jobs, len(jobs)), backend="loky")(
            delayed(_fit_job)(make, M, y, classes, job, log_proba) for job in jobs
        )
    oof = np.zeros((len(y), len(classes)))
    for (scores, _), (_, test_idx) in zip(done[1:], folds):
        oof[test_idx] = scores
    full = done[0]
    if MATCH_FOLD_SCALE:
        _match_fold_scale(full, [scale for _, scale in done[1:]])
    return full, oof


def _fit_job(make, M, y: np.ndarray, classes: np.ndarray, job, log_proba: bool):
    """One fit: on every row (``job`` None: the model), or on a fold's train rows (its
    test rows' scores and its weight scale, :func:`_coef_scale`). One BLAS thread wherever it runs: a multi-threaded BLAS sums in
    another order, and the logistic regression's weights would depend on where it ran."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        if job is None:
            return make().fit(M, y)
        train_idx, test_idx = job
        model = make().fit(M[train_idx], y[train_idx])
        return _scores(model, M[test_idx], classes, log_proba=log_proba), _coef_scale(model)


def _coef_scale(model: Any) -> float | None:
    """RMS norm of a linear model's per-class weight rows (None: not a linear model)."""
    coef = getattr(model, "coef_", None)
    if coef is None:
        return None
    coef = np.atleast_2d(np.asarray(coef))
    return float(np.sqrt((coef**2).sum() / coef.shape[0]))


def _match_fold_scale(model: Any, fold_norms: list[float | None]) -> None:
    """Shrink a linear model fitted on every row to the weight scale of the fold models.

    The calibrator learns score → probability from the fold models' out-of-fold scores, but
    the served model is fitted on 1/(1 - 1/cv) times more rows, and with the same C its
    weights (hence margins) come out larger: on the shared business_service head (77 classes)
    it read 0.68 confidence against 0.63 holdout accuracy while out of fold the two agreed.
    Scaling ``coef_`` and ``intercept_`` by the same factor scales every score alike, so the
    arg-max (the plain reference's own decision) is unchanged and predicting costs the same.
    """
    full = _coef_scale(model)
    norms = [n for n in fold_norms if n]
    if not full or not norms:
        return
    factor = float(np.mean(norms)) / full
    model.coef_ = np.asarray(model.coef_) * factor
    model.intercept_ = np.asarray(model.intercept_) * factor


def fit_candidates(
    X: Features, y: Sequence[Any], kinds: Sequence[str] = KINDS, **params: Any
) -> dict[str, TextHead]:
    """One fitted :class:`TextHead` per kind, sharing base fits and folds."""
    stack_c = params.pop("stack_c", 1.0)
    n_jobs = params.pop("n_jobs", None)  # scheduling only: not a parameter of the heads
    parts = fit_parts(X, y, kinds=kinds, n_jobs=n_jobs, **params)
    return {kind: TextHead(kind, stack_c=stack_c, **params)._assemble(parts) for kind in kinds}
