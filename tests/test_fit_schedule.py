"""Fit scheduling: the candidates' fits run side by side on threads, and every fit is seeded,
so the out-of-fold scores, the chosen model and the bundle's predictions are the same whether
fitted serially or in parallel, and the same from one run to the next."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from triage.classifiers import KINDS, Features, fit_candidates, fit_parts, make_vectorizer, text_matrix
from triage.encoder import HashingEncoder
from triage.predict import Triager
from triage.ticket import Ticket

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"


def _demo(n: int = 900) -> tuple[list[str], list[str]]:
    with open(DEMO / "tickets.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:n]
    return [f"{r['title']}\n{r['description']}" for r in rows], [r["category"] for r in rows]


@pytest.fixture(scope="module")
def demo_features() -> tuple[Features, np.ndarray]:
    texts, y = _demo()
    return Features(texts, HashingEncoder().encode(texts)), np.asarray(y)


def _oof(parts) -> dict[str, np.ndarray]:
    return {k: getattr(parts, f"oof_{k}") for k in ("ref", "svc", "emb", "knn")}


def test_parallel_fits_give_the_serial_out_of_fold_scores_and_models(demo_features):
    X, y = demo_features
    params = dict(kinds=KINDS, class_weight="balanced", cv=3)
    serial = fit_parts(X, y, n_jobs=1, **params)
    parallel = fit_parts(X, y, n_jobs=3, **params)
    for key, oof in _oof(serial).items():
        assert oof is not None and np.array_equal(oof, _oof(parallel)[key]), key
    assert np.array_equal(serial.ref_svc.coef_, parallel.ref_svc.coef_)
    assert np.array_equal(serial.svc.coef_, parallel.svc.coef_)
    assert np.array_equal(serial.emb.coef_, parallel.emb.coef_)
    a = fit_candidates(X, y, KINDS, class_weight="balanced", cv=3, n_jobs=1)
    b = fit_candidates(X, y, KINDS, class_weight="balanced", cv=3, n_jobs=2)
    for kind in KINDS:
        assert np.array_equal(a[kind].oof_labels_, b[kind].oof_labels_), kind
        assert np.array_equal(a[kind].predict_proba(X), b[kind].predict_proba(X)), kind


def test_every_candidate_is_fitted_the_same_twice(demo_features):
    # the tfidf LinearSVC had no seed: liblinear's shuffling moved its out-of-fold scores
    X, y = demo_features
    first = fit_parts(X, y, kinds=("tfidf",), class_weight="balanced", cv=3)
    again = fit_parts(X, y, kinds=("tfidf",), class_weight="balanced", cv=3)
    assert first.svc.random_state == 0
    assert np.array_equal(first.oof_svc, again.oof_svc)
    assert np.array_equal(first.svc.coef_, again.svc.coef_)


def test_the_vocabulary_fitted_in_one_pass_gives_the_matrix_of_fit_then_transform():
    texts, _ = _demo(300)
    X = Features(texts)
    two_pass = make_vectorizer(len(texts)).fit(texts)
    parts = fit_parts(X, [str(i % 3) for i in range(len(texts))], kinds=("tfidf",), cv=2, n_jobs=1)
    a, b = text_matrix(two_pass, None, X), text_matrix(parts.vectorizer, None, X)
    assert list(two_pass.get_feature_names_out()) == list(parts.vectorizer.get_feature_names_out())
    assert (a != b).nnz == 0


def test_same_export_trained_twice_gives_the_same_bundle_predictions(tmp_path):
    import pandas as pd

    from training.pipeline import train

    export = tmp_path / "tickets.csv"  # the first 700 demo tickets: two trainings in a test
    pd.read_csv(DEMO / "tickets.csv", dtype=str, keep_default_na=False).head(700).to_csv(export, index=False)
    results = [
        train(
            export,
            DEMO / "mapping.yaml",
            tmp_path / name,
            encoder=HashingEncoder(),
            heads=["category"],
            candidates=("reference", "tfidf", "embedding", "combined"),
            progress=False,
            context_groups=(),
        )
        for name in ("first", "second")
    ]
    rep = [r.report["heads"]["category"] for r in results]
    assert rep[0]["chosen"] == rep[1]["chosen"]
    assert rep[0]["candidates"] == rep[1]["candidates"]  # every candidate's selection score
    texts, _ = _demo(60)
    tickets = [Ticket(subject=t.split("\n")[0], body=t.split("\n", 1)[1]) for t in texts]
    preds = []
    for r in results:
        tri = Triager.from_bundle(r.bundle_path, encoder=HashingEncoder())
        preds.append([out["fields"]["category"] for out in tri.classify(tickets)])
    assert preds[0] == preds[1]


def test_the_reference_candidate_labels_as_the_plain_reference_fitted_apart(demo_features):
    # train_head reads the report's same-run reference from the ``reference`` candidate
    # instead of fitting make_reference() a second time: they must be the same model
    from triage.classifiers import make_reference

    X, y = demo_features
    train, test = np.arange(0, len(y) * 2 // 3), np.arange(len(y) * 2 // 3, len(y))
    cand = fit_candidates(X.take(train), y[train], ("reference",), cv=3)["reference"]
    picked = cand.predict_labelled(X.take(test))[1]
    plain = make_reference().fit([X.texts[i] for i in train], y[train])
    assert list(cand.classes_[picked]) == list(plain.predict([X.texts[i] for i in test]))


def team_sorted_export(tmp_path, per_team: int, body: str):
    """A CSV export of three teams' tickets, sorted by team, and its mapping (body: a format
    of ``t``, the team, and ``i``, the row within it)."""
    import pandas as pd

    from training.mapping import load_mapping

    teams = ["access", "hardware", "network"]
    frame = pd.DataFrame(
        {
            "body": [body.format(t=t, i=i) for t in teams for i in range(per_team)],
            "team": [t for t in teams for _ in range(per_team)],
        }
    )
    data = tmp_path / "sorted.csv"
    frame.to_csv(data, index=False)
    (tmp_path / "m.yaml").write_text("text: {body: body}\nlabels: {team: team}\n")
    return data, load_mapping(tmp_path / "m.yaml")


def test_incremental_heads_learn_in_a_seeded_shuffled_order_the_same_twice(tmp_path, monkeypatch):

    from training import incremental
    from training.pipeline import assign_splits
    from training.stream import census

    # an export sorted by team: learnt in file order, SGD would end on the last team's rows
    data, mapping = team_sorted_export(tmp_path, 80, "{t} issue number {i} with {t} words")
    info = census(data, mapping, "team")
    seen: list[list[int]] = []
    learn = incremental._learn
    monkeypatch.setattr(
        incremental, "_learn", lambda m, part, rows: (seen.append(list(rows)), learn(m, part, rows))
    )

    def fit():
        return incremental.fit_incremental(
            data, mapping, ["team"], info, [], splits=lambda texts: assign_splits(texts), seed=0
        )["team"]

    first, again = fit(), fit()
    assert np.array_equal(first.svc_.coef_, again.svc_.coef_)
    assert seen[0] == seen[1] and seen[0] != sorted(seen[0])  # the same shuffle, not file order
    assert sorted(seen[0]) == sorted(set(seen[0]))  # every row once


def test_reference_kinds_share_one_calibration_and_equal_their_own_fit(demo_features):
    X, y = demo_features
    both = fit_candidates(X, y, ("reference", "reference_bias"), cv=3)
    alone = fit_candidates(X, y, ("reference_bias",), cv=3)["reference_bias"]
    assert both["reference"].calibrator_ is both["reference_bias"].calibrator_  # fitted once
    assert both["reference"].temperature_ == alone.temperature_
    assert np.array_equal(both["reference_bias"].bias_, alone.bias_)
    assert np.array_equal(both["reference_bias"].predict_proba(X), alone.predict_proba(X))


def test_the_shuffle_buffer_learns_every_row_once_and_mixes_across_slices(tmp_path, monkeypatch):

    from training import incremental
    from training.mapping import load_export
    from training.pipeline import assign_splits
    from training.stream import census

    data, mapping = team_sorted_export(tmp_path, 100, "{t} ticket {i} about {t}")
    learnt: list[list[str]] = []
    learn = incremental._learn

    def record(models, part, rows):
        learnt.append([part.texts[i] for i in rows])
        return learn(models, part, rows)

    monkeypatch.setattr(incremental, "_learn", record)
    head = incremental.fit_incremental(
        data,
        mapping,
        ["team"],
        census(data, mapping, "team"),
        [],
        splits=assign_splits,
        batch_rows=40,  # slices of 40 rows: each holds one team or two
        shuffle_rows=120,
    )["team"]
    texts = [t for chunk in learnt for t in chunk]
    whole = load_export(data, mapping).texts
    expected = [t for t, s in zip(whole, assign_splits(whole)) if s != "holdout"]
    assert sorted(texts) == sorted(expected) and head.rows_learnt_ == len(expected)  # each once
    assert len(learnt) > 1 and len({t.split()[0] for t in learnt[0]}) == 3  # mixed beyond a slice
