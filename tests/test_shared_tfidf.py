"""The classify fast path (shared TF-IDF blocks, scikit-learn's arithmetic without its
per-call checks) gives the same labels, probabilities and explanations as the slow one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from service_fixtures import _rows
from triage import predict_math
from triage.classifiers import Features, TextHead
from triage.predict import SharedVectorizers, Triager
from triage.text import model_text
from triage.ticket import Ticket

TEXTS = [
    "VPN down since this morning, cannot reach the file share",
    "Printer on floor 3 jams; ticket 4711 – bitte prüfen!",
    "",
    "password password password reset",
    "Outlook crashes when opening the calendar (again) 😩",
]


def _slow(monkeypatch, triager: Triager) -> None:
    """Every head computes its own transform through scikit-learn's public methods."""
    monkeypatch.setattr(predict_math, "decision_function", lambda m, X: m.decision_function(X))
    monkeypatch.setattr(predict_math, "predict_proba", lambda m, X: m.predict_proba(X))
    monkeypatch.setattr(predict_math, "tfidf_transform", lambda v, texts, analyze=None: v.transform(texts))
    monkeypatch.setattr(triager, "_shared", SharedVectorizers({}))


def _tickets(n: int = 40) -> list[Ticket]:
    return [
        Ticket(
            subject=r["title"],
            body=r["description"],
            channel=r.get("source") or "email",
            customer_tier=r.get("tier"),
            affected_service=r.get("service"),
        )
        for r in _rows()[:n]
    ]


def test_fast_path_gives_the_slow_paths_answers_on_a_real_bundle(service_env, monkeypatch):
    triager = Triager.from_bundle(service_env["bundle"])
    tickets = _tickets()
    vectors = triager.encoder().encode([model_text(t.subject, t.body) for t in tickets])
    one_by_one = [triager.classify([t], vectors=vectors[i : i + 1])[0] for i, t in enumerate(tickets)]
    batch = triager.classify(tickets, vectors=vectors)
    with monkeypatch.context() as m:
        _slow(m, triager)
        slow_one = [triager.classify([t], vectors=vectors[i : i + 1])[0] for i, t in enumerate(tickets)]
        slow_batch = triager.classify(tickets, vectors=vectors)
    assert json.dumps(one_by_one) == json.dumps(slow_one)
    assert json.dumps(batch) == json.dumps(slow_batch)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"ngram_range": (1, 2), "sublinear_tf": True, "dtype": np.float32},
        {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "dtype": np.float32},
        {"binary": True, "norm": "l1"},
        {"use_idf": False, "norm": None},
    ],
)
def test_tfidf_transform_equals_scikit_learns(params):
    vec = TfidfVectorizer(**params).fit([model_text(r["title"], r["description"]) for r in _rows()[:200]])
    fast, slow = predict_math.tfidf_transform(vec, TEXTS), vec.transform(TEXTS)
    assert fast.dtype == slow.dtype
    assert np.array_equal(fast.toarray(), slow.toarray())


def test_heads_fitted_on_different_texts_do_not_share():
    rows = _rows()
    texts = [model_text(r["title"], r["description"]) for r in rows]
    a = TextHead("tfidf", cv=2).fit(Features(texts[:120]), [r["kind"] for r in rows[:120]])
    b = TextHead("tfidf", cv=2).fit(Features(texts[120:240]), [r["kind"] for r in rows[120:240]])
    same = TextHead("tfidf", cv=2).fit(Features(texts[:120]), [r["kind"] for r in rows[:120]])
    assert SharedVectorizers({"a": a, "b": b}).distinct == 4  # word + char of each
    assert SharedVectorizers({"a": a, "same": same}).distinct == 2
