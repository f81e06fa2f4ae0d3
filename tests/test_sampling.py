"""triage train --max-rows: a stratified sample that keeps every class (rare ones at their floor)."""

from __future__ import annotations

from collections import Counter

import pytest

from test_training import write_export
from training.sampling import stratified_rows


def test_sample_is_proportional_keeps_rare_classes_and_is_deterministic():
    labels = ["big"] * 9000 + ["mid"] * 900 + ["rare"] * 30 + [None] * 70
    rows = stratified_rows(labels, 1000, seed=1, floor=50)
    got = Counter(labels[i] for i in rows)
    assert len(rows) <= 1000 and list(rows) == sorted(rows)
    assert got["rare"] == 30  # all of a class below the floor, never more than exist
    assert 50 <= got[None] <= 52  # the floor, plus its share of the rest
    # the budget left after the floors, in proportion to what each class has beyond them
    assert 780 <= got["big"] <= 820 and 110 <= got["mid"] <= 130
    assert list(stratified_rows(labels, 1000, seed=1, floor=50)) == list(rows)
    assert list(stratified_rows(labels, 1000, seed=2, floor=50)) != list(rows)
    assert len(stratified_rows(labels, 20_000)) == len(labels)  # nothing to cut
    with pytest.raises(ValueError, match="positive"):
        stratified_rows(labels, 0)


def test_train_with_max_rows_reads_only_the_sample(tmp_path):
    from training.pipeline import train
    from triage.encoder import HashingEncoder

    data, mapping = write_export(tmp_path, n_per_team=40, seed=5)
    result = train(
        data,
        mapping,
        None,
        encoder=HashingEncoder(),
        candidates=("tfidf",),
        cv=3,
        progress=False,
        max_rows=200,
        heads=["team"],
    )
    sampled = result.report["data"]["sampled"]
    assert sampled["rows_after"] <= 200 < sampled["rows_before"]
