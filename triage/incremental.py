"""A head that learns from an export of any size in bounded memory: hashed words + SGD.

TF-IDF needs a vocabulary, so its fit holds every text (and every distinct n-gram) at
once; at 10 M tickets that does not fit. A hashing vectorizer has no vocabulary (a term's
column is its hash), so it transforms one slice of the export at a time, and a linear
model trained with stochastic gradient descent (``partial_fit``) sees each slice once and
forgets it. Memory is one slice plus the weights (``n_features`` × classes), whatever the
number of rows.

``modified_huber`` rather than hinge: its scores are smooth margins that a temperature or
stacker calibrates as well as a LinearSVC's, and ``average=True`` (averaged SGD) makes one
pass over shuffled-enough data land close to the optimum. ``class_weight="balanced"``
cannot be given to ``partial_fit``; the weights are computed from the whole file's class
counts instead (the census of training/stream.py), which is what "balanced" means.

Calibration and the decision rule are :class:`~triage.classifiers.TextHead`'s: the head is
scored on rows it never learnt from (the stratified sample the other candidates train on),
and those scores feed the same calibrator choice, temperature and per-class bias. So it
competes with the sampled candidates on the same footing, and the bundle serves it like any
other head (``predict_labelled``, ``predict_explained``; hashed columns have no names, so it
explains no terms).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import FeatureUnion

from .classifiers import Features, Parts, TextHead, _scores, text_matrix

KIND = "incremental"
CHUNK = 4096  # rows hashed at once: a bounded sparse matrix whatever the batch


def make_hashing_vectorizer(n_features: int = 2**19) -> FeatureUnion:
    """Word 1–2-grams hashed into ``n_features`` columns, rows L2-normed.

    No char n-grams: on the shared it_tickets (38 k train rows, one SGD pass) they added
    0.003 macro-F1 (0.838 → 0.841) for 7x the hashing time (92 s against 13.5 s for 48 k
    tickets on a loaded 2-core machine; 30 min for 1 M rows against 5)."""
    return FeatureUnion(
        [
            (
                "word",
                HashingVectorizer(
                    ngram_range=(1, 2), n_features=n_features, alternate_sign=False, dtype=np.float32
                ),
            ),
        ]
    )


def balanced_weights(counts: Mapping[str, int]) -> dict[str, float]:
    """scikit-learn's ``balanced`` weights (n / (k × count)) from whole-file class counts."""
    total, k = sum(counts.values()), len(counts)
    return {c: total / (k * n) for c, n in counts.items() if n > 0}


class IncrementalHead(TextHead):
    """Hashed word 1–2-grams → SGD (modified Huber), fitted slice by slice.

    Use: ``learn(texts, y)`` on each slice of the export (never on the rows it will be
    judged on), then ``assemble(X, y)`` on held-out rows to calibrate it; after that it
    predicts like any :class:`TextHead`.
    """

    def __init__(
        self,
        classes: Sequence[str] = (),
        class_counts: Mapping[str, int] | None = None,
        *,
        n_features: int = 2**19,
        alpha: float = 1e-6,
        cv: int = 5,
        random_state: int = 0,
    ) -> None:
        super().__init__(KIND, cv=cv, random_state=random_state)
        self.classes = classes
        self.class_counts = class_counts
        self.n_features = n_features
        self.alpha = alpha

    @property
    def uses_text(self) -> bool:
        return True

    @property
    def uses_vectors(self) -> bool:
        return False

    def _begin(self) -> None:
        self.classes_ = np.asarray(sorted(str(c) for c in self.classes))
        # the balanced weights go in as per-row sample weights, the same to SGD: its
        # class_weight dict refuses labels that read as numbers ("1", "2": scikit-learn
        # 1.x "The classes, [1, 2], are not in class_weight"), as an export's codes do
        weights = balanced_weights(self.class_counts) if self.class_counts else {}
        self.row_weight_ = {str(c): w for c, w in weights.items()}
        self.vectorizer_ = make_hashing_vectorizer(self.n_features)
        self.svc_ = SGDClassifier(
            loss="modified_huber", alpha=self.alpha, average=True, random_state=self.random_state
        )
        self.context_ = None
        self.rows_learnt_ = 0

    def learn(self, texts: Sequence[str], y: Sequence[Any], matrix: Any = None) -> "IncrementalHead":
        """One ``partial_fit`` step on a slice (rows whose label is outside ``classes`` are skipped).

        ``matrix`` is the slice already hashed by :meth:`hash` (several heads share it)."""
        if not hasattr(self, "svc_"):
            self._begin()
        y = np.asarray([str(v) for v in y])
        known = np.flatnonzero(np.isin(y, self.classes_))
        if not len(known):
            return self
        M = self.hash(texts) if matrix is None else matrix
        weight = np.asarray([self.row_weight_.get(v, 1.0) for v in y[known]]) if self.row_weight_ else None
        self.svc_.partial_fit(M[known], y[known], classes=self.classes_, sample_weight=weight)
        self.rows_learnt_ += len(known)
        return self

    def hash(self, texts: Sequence[str]) -> Any:
        """The sparse input of the SGD for ``texts`` (no state: any head's hashes are the same)."""
        if not hasattr(self, "vectorizer_"):
            self._begin()
        return text_matrix(self.vectorizer_, None, Features(list(texts)))

    def assemble(self, X: Features, y: Sequence[Any]) -> "IncrementalHead":
        """Calibrate on rows the SGD never saw: the same calibrator choice, temperature and
        per-class bias as every other candidate (``TextHead._assemble``)."""
        if not getattr(self, "rows_learnt_", 0):
            raise ValueError("incremental head: no rows learnt before assemble()")
        y = np.asarray([str(v) for v in y])
        scores = self._base_scores(X)
        seen = np.isin(y, self.classes_)
        # a class the SGD learnt but these rows lack (one example in the whole export, in
        # another split) cannot be calibrated: the head keeps the classes it can calibrate
        kept = np.isin(self.classes_, y)
        self.sgd_classes_, self.kept_ = self.classes_, kept
        parts = Parts(
            classes=self.classes_[kept],
            y=y[seen],
            vectorizer=self.vectorizer_,
            svc=self.svc_,
            oof_svc=scores[seen][:, kept],
        )
        vectorizer, svc = self.vectorizer_, self.svc_
        self._assemble(parts)
        self.vectorizer_, self.svc_, self.context_ = vectorizer, svc, None
        self.classes_ = parts.classes
        return self

    def _base_scores(self, X: Features, tfidf: Any = None) -> np.ndarray:
        """The SGD's margins, hashed ``CHUNK`` rows at a time (a big batch's matrix
        would otherwise be held at once)."""
        if tfidf is not None or len(X) <= CHUNK:
            M = self.hash(X.texts) if tfidf is None else tfidf
            scores = _scores(self.svc_, M, getattr(self, "sgd_classes_", self.classes_), log_proba=False)
            return scores[:, self.kept_] if getattr(self, "kept_", None) is not None else scores
        return np.vstack(
            [
                self._base_scores(X.take(np.arange(lo, min(lo + CHUNK, len(X)))))
                for lo in range(0, len(X), CHUNK)
            ]
        )

    def __getstate__(self) -> dict:
        """The bundle keeps the averaged weights as float32 (a quarter of what SGD holds to
        go on learning: its running and averaged copies in float64)."""
        state = super().__getstate__()
        svc = state.get("svc_")
        if svc is not None:
            import copy

            svc = copy.copy(svc)
            for name in ("_standard_coef", "_standard_intercept", "_average_coef", "_average_intercept"):
                svc.__dict__.pop(name, None)
            svc.coef_ = np.asarray(svc.coef_, dtype=np.float32)
            state["svc_"] = svc
        return state

    def explain(self, X: Features, labels: Sequence[Any], k: int = 5, tfidf: Any = None) -> list[list[dict]]:
        """Hashed columns have no names: no terms to show (rather than invent them)."""
        return [[] for _ in range(len(X))]
