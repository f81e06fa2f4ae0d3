"""The Triager façade: the only thing the service needs from a bundle.

``Triager.from_bundle(path).classify([Ticket, ...])`` returns, per ticket and per
head, the label, its calibrated probability, the alternatives, an
apply/suggest/abstain decision and the terms that explain it. Texts of a batch
are encoded once and every head reads the same :class:`Features`, so a batch
costs one encoder call whatever the number of heads.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .bundle import Bundle, load_bundle
from .classifiers import Features
from .encoder import DEFAULT_ENCODER, Encoder, load_encoder
from .features import ticket_context
from . import predict_math
from .priority import PriorityMatrix
from .text import model_text
from .thresholds import decide
from .ticket import Decision, Ticket

N_ALTERNATIVES = 3
N_TERMS = 5
N_NEIGHBOURS = 3
_ORDER = {Decision.ABSTAIN.value: 0, Decision.SUGGEST.value: 1, Decision.APPLY.value: 2}


def _trusted_inputs():
    """Skip scikit-learn's per-call input checks: the features are our own, finite.

    The finite scan and parameter validation were a measurable share of each
    head's time on one-ticket calls (intake classifies one ticket at a time). The service's
    request path already runs inside such a context: entering another costs ~6 us (two
    ``set_config`` calls) and changes nothing, so it is left out then.
    """
    import sklearn

    config = sklearn.get_config()
    if config["assume_finite"] and config["skip_parameter_validation"]:
        return contextlib.nullcontext()
    return sklearn.config_context(assume_finite=True, skip_parameter_validation=True)


class SharedVectorizers:
    """One TF-IDF transform per call for heads whose vectorizers are equal.

    Heads fitted on the same texts (team, type, category of one export) each carry an
    equal copy of the word and char vectorizers; transforming a ticket is ~a third of a
    TF-IDF head's predict time, so equal copies are found once, at load, and each call
    transforms the texts once per distinct vectorizer. The blocks are the same arrays
    the head would have computed itself: predictions do not change (tests/test_shared_tfidf.py).
    """

    def __init__(self, models: Mapping[str, Any]) -> None:
        self._canonical: dict[int, Any] = {}
        distinct: list[Any] = []
        for model in models.values():
            union = getattr(model, "vectorizer_", None)
            for _, vec in getattr(union, "transformer_list", None) or []:
                match = next((d for d in distinct if _equal_vectorizers(d, vec)), None)
                if match is None:
                    distinct.append(vec)
                self._canonical[id(vec)] = match if match is not None else vec
        self.distinct = len(distinct)
        self.total = len(self._canonical)
        # vectorizers that analyse a text alike (same n-gram kind, different vocabularies)
        # share the analysis too: it is most of a transform's time
        self._analysis: dict[int, tuple[str, Callable[[str], list]]] = {
            id(vec): (key, vec.build_analyzer())
            for vec in distinct
            if (key := predict_math.analysis_key(vec)) is not None
        }
        # ... and one vocabulary look-up per feature: per analysis kind, the union of the
        # vocabularies (feature -> union id) and, per vectorizer, its column of each union id
        # (-1: not in its vocabulary), so a text's features are looked up once, not once per
        # head (the look-ups were a third of a TF-IDF-only classify)
        self._union: dict[str, dict[str, int]] = {}
        self._columns: dict[int, np.ndarray] = {}
        for vec in distinct:
            if id(vec) in self._analysis and predict_math.counts_apply(vec):
                union = self._union.setdefault(self._analysis[id(vec)][0], {})
                for feature in vec.vocabulary_:
                    union.setdefault(feature, len(union))
        for vec in distinct:
            kind = self._analysis.get(id(vec), ("", None))[0]
            if kind in self._union and predict_math.counts_apply(vec):
                union = self._union[kind]
                columns = np.full(len(union), -1, dtype=np.int32)
                columns[[union[f] for f in vec.vocabulary_]] = list(vec.vocabulary_.values())
                self._columns[id(vec)] = columns
        # ... and for char_wb kinds, the look-up one distinct word at a time (n-grams stay
        # inside a word): most of a TF-IDF-only classify was making and looking up n-grams
        self._words: dict[str, predict_math.WordNgramIds] = {}
        self._kind_key = {kind: key for key, (kind, _) in self._analysis.items()}
        for vec in distinct:
            kind = self._analysis.get(id(vec), ("", None))[0]
            if kind in self._union and kind not in self._words and predict_math.WordNgramIds.applies(vec):
                self._words[kind] = predict_math.WordNgramIds(vec, self._union[kind])

    def for_call(self) -> Callable[[Any, list[str]], Any]:
        """A ``transform(vectorizer, texts)`` remembering its blocks for one classify call."""
        blocks: dict[int, Any] = {}
        analysed: dict[str, list] = {}
        looked_up: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

        def transform(vectorizer: Any, texts: list[str]) -> Any:
            canonical = self._canonical.get(id(vectorizer), vectorizer)
            key = id(canonical)
            if key not in blocks:
                if key in self._columns:
                    kind = self._analysis[key][0]
                    if kind not in looked_up:
                        looked_up[kind] = self._look_up(kind, texts, analysed)
                    blocks[key] = _columns_counts(canonical, self._columns[key], *looked_up[kind])
                else:
                    counted = None
                    if key in self._analysis:
                        counted = self._analysed(key, texts, analysed)
                    blocks[key] = predict_math.tfidf_transform(canonical, texts, counted)
            return blocks[key]

        return transform

    def _analysed(self, key: int, texts: list[str], analysed: dict[str, list]) -> list:
        """The texts' feature counts of this vectorizer's analysis kind, made once per call."""
        kind, analyze = self._analysis[key]
        if kind not in analysed:
            analysed[kind] = predict_math.analyse(analyze, texts)
        return analysed[kind]

    def _look_up(
        self, kind: str, texts: list[str], analysed: dict[str, list]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(union ids, counts, row pointers) of the texts' features of one analysis kind."""
        if kind in self._words:
            return self._words[kind].lookup(texts)
        return _union_counts(self._union[kind], self._analysed(self._kind_key[kind], texts, analysed))


def _union_counts(union: dict[str, int], counted: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(union ids, counts, row pointers) of the texts' features found in ``union``."""
    ids, counts, indptr = predict_math.lookup_counts(union, counted)
    return np.asarray(ids, dtype=np.int64), np.asarray(counts, dtype=np.intc), np.asarray(indptr)


def _columns_counts(
    vectorizer: Any, columns: np.ndarray, ids: np.ndarray, counts: np.ndarray, indptr: np.ndarray
):
    """One vectorizer's TF-IDF block from the union look-up: its columns of those ids (one
    text: a :class:`~triage.predict_math.RowBlock`, which the head's stacking turns into its
    one matrix)."""
    cols = columns[ids]
    kept = cols >= 0
    if len(indptr) == 2:
        return predict_math.tfidf_row(vectorizer, counts[kept], cols[kept])
    rows = np.concatenate(([0], np.cumsum(kept)))[indptr].astype(np.int32)
    return predict_math.tfidf_from_counts(vectorizer, counts[kept], cols[kept], rows)


def _equal_vectorizers(a: Any, b: Any) -> bool:
    """Same class, parameters, vocabulary and IDF weights: the same transform."""
    if a is b:
        return True
    if type(a) is not type(b) or repr(a.get_params()) != repr(b.get_params()):
        return False
    if getattr(a, "vocabulary_", None) != getattr(b, "vocabulary_", None):
        return False
    idf_a, idf_b = getattr(a, "idf_", None), getattr(b, "idf_", None)
    return (idf_a is None) == (idf_b is None) and (idf_a is None or np.array_equal(idf_a, idf_b))


class Triager:
    """Classifies tickets with a loaded bundle; thread-safe for reads (no state changes)."""

    takes_texts = True  # classify(..., texts=) (callers check: stand-in triagers do not)

    def __init__(self, bundle: Bundle, encoder: Encoder | None = None) -> None:
        self._bundle = bundle
        self.manifest: dict = bundle.manifest
        self.bundle_id: str = bundle.bundle_id
        self._models = bundle.heads
        self._encoder = encoder
        prio = self.manifest.get("priority") or {}
        self._derive = list(prio.get("derive_from") or [])
        if self._derive and not set(self._derive) <= set(self._models):
            self._derive = []  # the bundle lacks a head needed to derive priority
        self._matrix = PriorityMatrix.from_config(prio.get("matrix")) if self._derive else None
        self._shared = SharedVectorizers(self._models)
        self.heads: list[str] = list(self._models) + (
            ["priority"] if self._derive and "priority" not in self._models else []
        )

    @classmethod
    def from_bundle(
        cls, path: str | Path, encoder: Encoder | None = None, signing_key: str | bytes | None = None
    ) -> "Triager":
        """Load a bundle folder (signature, checksums and versions verified); ``encoder``
        overrides tests."""
        return cls(load_bundle(path, signing_key=signing_key), encoder=encoder)

    @property
    def needs_vectors(self) -> bool:
        return any(getattr(m, "uses_vectors", False) for m in self._models.values())

    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.manifest.get("encoder") or DEFAULT_ENCODER)
        return self._encoder

    @property
    def models(self) -> dict[str, Any]:
        """The fitted heads by name (read-only use: evaluation scores them directly)."""
        return dict(self._models)

    def features(self, tickets: Sequence[Ticket]) -> Features:
        return self.features_for_texts([model_text(t.subject, t.body) for t in tickets])

    def features_for_texts(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> Features:
        """Model inputs for already-normalised texts: one encoder call for the whole batch.

        ``vectors`` are the texts' vectors when the caller already encoded them with
        this triager's encoder (see :meth:`encoder_reference`); they are not recomputed.
        """
        texts = list(texts)
        if not self.needs_vectors or not texts:
            return Features(texts, None)
        if vectors is None or len(vectors) != len(texts):
            vectors = self.encoder().encode(texts)
        return Features(texts, np.asarray(vectors, dtype=np.float32))

    def encoder_reference(self) -> dict:
        """The encoder the heads read vectors from (callers sharing it pass ``vectors``)."""
        return self.encoder().reference()

    def classify(
        self,
        tickets: Sequence[Ticket],
        policy: Mapping[str, Any] | None = None,
        histories: Sequence[Mapping[str, Sequence[str]] | None] | None = None,
        *,
        vectors: np.ndarray | None = None,
        texts: Sequence[str] | None = None,
    ) -> list[dict]:
        """One dict per ticket: ``{"fields": {head: {...}}, "bundle_id": ...}`` (docs/DESIGN.md).

        ``histories``: per ticket, the labels of the requester's earlier tickets
        (``{"team": [...], ...}``, newest first) for heads trained with requester history;
        without it those heads see no history, as for a first-time requester.
        ``vectors`` (one row per ticket, from this triager's encoder) spare the encoder call;
        ``texts`` (the tickets' ``model_text``, when the caller already has them for its
        encoder call) spare the normalisation, about as costly as a TF-IDF head's predict.
        """
        tickets = list(tickets)
        if not tickets:
            return []
        if texts is None or len(texts) != len(tickets):
            texts = [model_text(t.subject, t.body) for t in tickets]
        X = self.features_for_texts(texts, vectors)
        transform = self._shared.for_call()
        with _trusted_inputs():
            per_head = {
                name: self._head_fields(
                    name,
                    model,
                    self._with_context(model, X, tickets, histories),
                    (policy or {}).get(name) or {},
                    transform,
                )
                for name, model in self._models.items()
            }
        out = []
        for i, ticket in enumerate(tickets):
            fields = {name: rows[i] for name, rows in per_head.items()}
            self._apply_where(fields, ticket)
            if self._derive and "priority" not in fields:
                fields["priority"] = self._derived_priority(fields, (policy or {}).get("priority"))
            out.append({"fields": fields, "bundle_id": self.bundle_id})
        return out

    @property
    def uses_history(self) -> bool:
        return any("history" in (getattr(m, "context_groups_", ()) or ()) for m in self._models.values())

    @staticmethod
    def _with_context(
        model: Any, X: Features, tickets: Sequence[Ticket], histories: Sequence[Any] | None
    ) -> Features:
        """The head's inputs with its context tokens, built as in training (triage.features)."""
        groups = getattr(model, "context_groups_", ()) or ()
        if not groups:
            return X
        hist = list(histories) if histories is not None else [None] * len(tickets)
        return X.with_context([ticket_context(t, h, groups) for t, h in zip(tickets, hist)])

    def _head_fields(
        self,
        name: str,
        model: Any,
        X: Features,
        head_policy: Mapping[str, Any],
        transform: Callable[[Any, list[str]], Any] | None = None,
    ) -> list[dict]:
        if hasattr(model, "predict_explained"):
            proba, explanations, label_idx = model.predict_explained(X, k=N_TERMS, transform=transform)
        else:
            proba = model.predict_proba(X)
            explanations = [[] for _ in range(len(X))]
            label_idx = proba.argmax(axis=1)
        classes = [str(c) for c in model.classes_]
        # the reported label first (it may not be the most probable class: the head's decision
        # rule is tuned for macro-F1), then the other classes by probability
        # (as Python lists: the same values, without a NumPy scalar per element read below)
        probs = np.asarray(proba).tolist()
        order = [
            [j] + [c for c in row if c != j]
            for j, row in zip(np.asarray(label_idx).tolist(), (-proba).argsort(axis=1).tolist())
        ]
        labels = [classes[row[0]] for row in order]
        thresholds = (self.manifest["heads"].get(name) or {}).get("thresholds") or {}
        mode = head_policy.get("mode", "auto")
        overrides = head_policy.get("classes") or {}
        neighbours = (
            model.explain_neighbours(X, k=N_NEIGHBOURS)
            if hasattr(model, "explain_neighbours")
            else [[] for _ in range(len(X))]
        )
        rows = []
        for i, label in enumerate(labels):
            p = float(probs[i][order[i][0]])
            row = {
                "label": label,
                "probability": round(p, 6),
                "alternatives": [
                    {"label": classes[j], "probability": round(float(probs[i][j]), 6)}
                    for j in order[i][1 : 1 + N_ALTERNATIVES]
                ],
                "decision": decide(label, p, thresholds, mode=mode, override=overrides.get(label)).value,
                "explanation": explanations[i],
            }
            if neighbours[i]:  # heads reading sentence vectors cite the tickets behind the vote
                row["neighbours"] = neighbours[i]
            rows.append(row)
        return rows

    def _apply_where(self, fields: dict, ticket: Ticket) -> None:
        """A head trained only where e.g. ``type == incident`` abstains on other tickets.

        The condition is read from the ticket's known fields first, else from the prediction.
        """
        for name, entry in (self.manifest.get("heads") or {}).items():
            for other, wanted in ((entry or {}).get("where") or {}).items():
                value = ticket.fields.get(other, (fields.get(other) or {}).get("label"))
                allowed = wanted if isinstance(wanted, list) else [wanted]
                if name in fields and value is not None and str(value) not in map(str, allowed):
                    fields[name]["decision"] = Decision.ABSTAIN.value

    def _derived_priority(self, fields: dict, head_policy: Mapping[str, Any] | None) -> dict:
        """Priority from predicted impact × urgency: joint probability, the weaker decision."""
        impact, urgency = (fields[h] for h in self._derive)
        dist_i = {
            impact["label"]: impact["probability"],
            **{a["label"]: a["probability"] for a in impact["alternatives"]},
        }
        dist_u = {
            urgency["label"]: urgency["probability"],
            **{a["label"]: a["probability"] for a in urgency["alternatives"]},
        }
        joint = self._matrix.joint(dist_i, dist_u)
        try:
            label = self._matrix.label(impact["label"], urgency["label"])
        except Exception:  # a predicted level the matrix does not know: nothing to derive
            return {
                "label": None,
                "probability": 0.0,
                "alternatives": [],
                "decision": Decision.ABSTAIN.value,
                "explanation": [],
            }
        decision = min(impact["decision"], urgency["decision"], key=_ORDER.__getitem__)
        mode = (head_policy or {}).get("mode", "auto")
        if mode == "off":
            decision = Decision.ABSTAIN.value
        elif mode == "suggest_only" and decision == Decision.APPLY.value:
            decision = Decision.SUGGEST.value
        return {
            "label": label,
            "probability": round(float(joint.get(label, 0.0)), 6),
            "alternatives": [
                {"label": k, "probability": round(v, 6)} for k, v in joint.items() if k != label
            ][:N_ALTERNATIVES],
            "decision": decision,
            "explanation": _priority_terms(impact, urgency),
            "derived_from": {"impact": impact["label"], "urgency": urgency["label"]},
        }


def _priority_terms(impact: Mapping[str, Any], urgency: Mapping[str, Any], k: int = 3) -> list[dict]:
    """Priority's reasons are its inputs': the terms behind the impact and the urgency."""
    out = []
    for name, field in (("impact", impact), ("urgency", urgency)):
        out.append({"term": f"{name}={field['label']}", "weight": field["probability"]})
        out += [
            {"term": f"{name}: {t['term']}", "weight": t["weight"]}
            for t in (field.get("explanation") or [])[:k]
        ]
    return out
