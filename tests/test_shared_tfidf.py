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


# Vectorizer settings the fast paths must match scikit-learn under (word and char_wb analysers,
# sublinear tf, float32, binary, l1 and no norm, no idf).
VECTORIZER_PARAMS = [
    {},
    {"ngram_range": (1, 2), "sublinear_tf": True, "dtype": np.float32},
    {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "dtype": np.float32},
    {"binary": True, "norm": "l1"},
    {"use_idf": False, "norm": None},
]


@pytest.mark.parametrize("params", VECTORIZER_PARAMS)
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


def test_vocabularies_of_one_analysis_are_looked_up_once_per_text(monkeypatch):
    """Heads fitted on different texts keep their own vocabularies, but a text's features are
    looked up once per analysis kind (word, char) in their union, and each head's block is
    still exactly its own vectorizer's transform."""
    import triage.predict as predict

    rows = _rows()
    texts = [model_text(r["title"], r["description"]) for r in rows]
    a = TextHead("tfidf", cv=2).fit(Features(texts[:120]), [r["kind"] for r in rows[:120]])
    b = TextHead("tfidf", cv=2).fit(Features(texts[120:240]), [r["kind"] for r in rows[120:240]])
    shared = SharedVectorizers({"a": a, "b": b})
    lookups = []
    union_counts, by_words = predict._union_counts, predict_math.WordNgramIds.lookup
    monkeypatch.setattr(predict, "_union_counts", lambda *args: lookups.append(1) or union_counts(*args))
    monkeypatch.setattr(
        predict_math.WordNgramIds, "lookup", lambda *args: lookups.append(1) or by_words(*args)
    )
    transform = shared.for_call()
    for head in (a, b):
        for _, vec in head.vectorizer_.transformer_list:
            fast, slow = transform(vec, TEXTS), vec.transform(TEXTS)
            assert fast.dtype == slow.dtype and fast.has_sorted_indices
            assert np.array_equal(fast.indptr, slow.indptr) and np.array_equal(fast.indices, slow.indices)
            assert np.array_equal(fast.data, slow.data)
    assert len(lookups) == 2  # word and char: not once per vectorizer (4)


@pytest.mark.parametrize(
    "dtypes", [(np.float64, np.float64), (np.float32, np.float64), (np.float32, np.int64)]
)
def test_one_row_stacking_equals_scipys(dtypes):
    """``predict_math.hstack_csr`` (one-row blocks: intake and classify) is ``sparse.hstack``."""
    from scipy import sparse

    rng = np.random.default_rng(3)
    blocks = []
    for width, dtype in zip((50, 7), dtypes):
        dense = (rng.random((1, width)) < 0.3) * rng.integers(1, 5, (1, width))
        blocks.append(sparse.csr_matrix(dense.astype(dtype)))
    blocks.append(sparse.csr_matrix((1, 4)))  # an empty block (no context tokens)
    fast, slow = predict_math.hstack_csr(blocks), sparse.hstack(blocks, format="csr")
    assert type(fast) is type(slow) and fast.shape == slow.shape and fast.dtype == slow.dtype
    for part in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(fast, part), getattr(slow, part))
    two_rows = [sparse.vstack([b, b], format="csr") for b in blocks]  # scipy's own path
    assert (predict_math.hstack_csr(two_rows) != sparse.hstack(two_rows, format="csr")).nnz == 0


# ----------------------------------------------------------------- one text: no sparse matrix
@pytest.mark.parametrize("params", VECTORIZER_PARAMS)
def test_one_texts_row_block_is_scikit_learns_row(params):
    """One text through the shared path is a RowBlock (no CSR built): the same columns, values
    and dtype as ``vectorizer.transform``, to the last bit."""
    vec = TfidfVectorizer(**params).fit([model_text(r["title"], r["description"]) for r in _rows()[:200]])
    shared = SharedVectorizers({"a": _Head(vec)})
    for text in TEXTS + [model_text(r["title"], r["description"]) for r in _rows()[200:260]]:
        fast, slow = shared.for_call()(vec, [text]), vec.transform([text])
        assert type(fast) is predict_math.RowBlock and fast.shape == slow.shape
        assert fast.dtype == slow.dtype
        assert np.array_equal(fast.indices, slow.indices) and np.array_equal(fast.data, slow.data)
        back = fast.tocsr()
        assert (back != slow).nnz == 0 and back.dtype == slow.dtype


class _Head:
    """What SharedVectorizers reads of a head: a FeatureUnion-like ``vectorizer_``."""

    def __init__(self, vec) -> None:
        self.vectorizer_ = type("Union", (), {"transformer_list": [("v", vec)]})()


@pytest.mark.parametrize("classes", [2, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_scores_equal_scipys_product(classes, dtype):
    """``decision_function`` of a RowBlock is scipy's CSR × coef.T + intercept, bit for bit
    (binary heads have one coefficient row; a text may have no known term at all)."""
    from sklearn.svm import LinearSVC

    rows = _rows()
    texts = [model_text(r["title"], r["description"]) for r in rows]
    labels = [str(i % classes) for i in range(len(texts))]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=dtype).fit(texts)
    svc = LinearSVC(C=0.5).fit(vec.transform(texts), labels)
    shared = SharedVectorizers({"a": _Head(vec)})
    for text in texts[:150] + ["zzzz qqqq", ""]:
        row, csr = shared.for_call()(vec, [text]), vec.transform([text])
        fast, slow = predict_math.decision_function(svc, row), svc.decision_function(csr)
        assert fast.shape == slow.shape and fast.dtype == slow.dtype
        assert np.array_equal(fast, slow), text


def _fit_kinds(tmp_path):
    """A bundle of every TF-IDF kind (reference, reference_bias, tfidf, one with context
    tokens), as training makes them."""
    from triage.bundle import write_bundle
    from triage.features import context_strings

    rows = _rows()
    X = Features([model_text(r["title"], r["description"]) for r in rows], None)
    meta = {"channel": [r.get("source") for r in rows], "customer_tier": [r.get("tier") for r in rows]}
    groups = ("channel", "customer_tier")
    heads, manifest_heads = {}, {}
    for head, kind, column, context in (
        ("type", "reference", "kind", False),
        ("team", "reference_bias", "assignment_group", False),
        ("category", "tfidf", "category", False),
        ("impact", "tfidf", "impact", True),
    ):
        Xh = X.with_context(context_strings(meta, len(rows), groups=groups)) if context else X
        model = TextHead(kind, cv=3).fit(Xh, [r[column] for r in rows])
        model.context_groups_ = groups if context else ()
        heads[head] = model
        manifest_heads[head] = {
            "labels": [str(c) for c in model.classes_],
            "thresholds": {str(c): {"apply": 0.9, "suggest": 0.4} for c in model.classes_},
        }
    manifest = {"encoder": {"kind": "hashing", "dim": 256}, "heads": manifest_heads}
    return write_bundle(tmp_path / "models", heads, manifest, extras=lambda tmp, *_: None)


def test_one_ticket_fast_path_gives_the_slow_paths_answers_for_every_tfidf_kind(tmp_path, monkeypatch):
    """The one-text path (RowBlocks, row scores, softmax without array-namespace detection)
    against scikit-learn's own transforms and predict methods: identical labels,
    probabilities, decisions and explanations for each kind of TF-IDF head."""
    triager = Triager.from_bundle(_fit_kinds(tmp_path))
    assert any(getattr(m, "context_", None) is not None for m in triager.models.values())
    tickets = _tickets(60) + [Ticket(subject=t, body=t, channel="email") for t in TEXTS]
    fast = [triager.classify([t])[0] for t in tickets]
    with monkeypatch.context() as m:
        _slow(m, triager)
        slow = [triager.classify([t])[0] for t in tickets]
    assert json.dumps(fast) == json.dumps(slow)
    assert any(f["fields"]["type"]["explanation"] for f in fast)


def test_one_row_confidence_map_is_the_batch_ones():
    """``map_confidence`` of one row (its own code path) equals the batch arithmetic's row,
    bit for bit: random distributions, a label with all the mass, an all-zero rest."""
    from triage.classifiers import map_confidence

    rng = np.random.default_rng(15)
    rows = [rng.dirichlet(np.ones(k) * a) for k in (2, 3, 7, 12) for a in (0.1, 1.0, 5.0) for _ in range(30)]
    rows += [np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0]), np.array([0.5, 0.5])]
    for proba in rows:
        for j in {0, int(proba.argmax()), len(proba) - 1}:
            for ab in ((0.7, 0.4), (1.3, -0.8), (5.0, 5.0)):
                one = map_confidence(proba[None, :], np.array([j]), ab)
                two = map_confidence(np.vstack([proba, proba]), np.array([j, j]), ab)  # batch path
                assert np.array_equal(one[0], two[0]) and np.array_equal(np.signbit(one), np.signbit(two[:1]))


# Texts whose words split oddly: runs and kinds of white space (tabs, no-break and
# ideographic spaces, information separators), one-letter words, accents, emoji, long words.
ODD_TEXTS = [
    *TEXTS,
    "a  b\t\tc\n\nd\u00a0e\u3000f\x1cg\x1fh \u2028 i",
    "  leading and trailing  ",
    "x",
    "Ünïcödé ÉCOLE straße İstanbul ǅemal",
    "supercalifragilisticexpialidocious " * 3,
    "\t \n",
]


@pytest.mark.parametrize(
    "params",
    [
        {"analyzer": "char_wb", "ngram_range": (2, 5)},
        {"analyzer": "char_wb", "ngram_range": (1, 3), "lowercase": False},
        {"analyzer": "char_wb", "ngram_range": (3, 3), "strip_accents": "unicode"},
    ],
)
def test_char_wb_looked_up_by_word_equals_the_whole_texts_analysis(params):
    """A word's n-grams looked up once and summed per text: the same (id, count) pairs as
    analysing each whole text and looking its n-grams up, for one text and for a batch."""
    fitted = [model_text(r["title"], r["description"]) for r in _rows()[:200]] + ODD_TEXTS[5:7]
    vec = TfidfVectorizer(**params).fit(fitted)
    assert predict_math.WordNgramIds.applies(vec)
    words = predict_math.WordNgramIds(vec, vec.vocabulary_, max_words=5)  # the memo restarts often
    slow = predict_math.lookup_counts(vec.vocabulary_, predict_math.analyse(vec.build_analyzer(), ODD_TEXTS))

    def rows(ids, counts, indptr):
        return [
            sorted(zip(np.asarray(ids)[a:b].tolist(), np.asarray(counts)[a:b].tolist()))
            for a, b in zip(indptr[:-1], indptr[1:])
        ]

    expected = rows(*slow)
    for _ in range(2):  # the second time from the memo
        assert rows(*words.lookup(ODD_TEXTS)) == expected
        for text, row in zip(ODD_TEXTS, expected):
            ids, counts, indptr = words.lookup([text])
            assert ids.dtype == np.int64 and counts.dtype == np.intc and list(indptr) == [0, len(ids)]
            assert rows(ids, counts, indptr) == [row]
    assert len(words._memo) <= 5


def test_only_char_wb_vectorizers_are_looked_up_by_word():
    assert not predict_math.WordNgramIds.applies(TfidfVectorizer())
    assert not predict_math.WordNgramIds.applies(TfidfVectorizer(analyzer="char"))
