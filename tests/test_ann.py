"""triage.ann.VectorIndex: exact below its threshold, a faiss IVF index above, same answers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from triage import ann
from triage.ann import VectorIndex


def clustered(n: int, dim: int = 48, topics: int = 40, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim))
    x = centres[rng.integers(0, topics, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(data: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-(data @ (q / np.linalg.norm(q))))[:k]]


def test_small_index_is_an_exact_scan_with_add_replace_and_remove():
    data = clustered(300)
    index = VectorIndex(48, exact_below=1000)
    index.add(range(300), data * 3.0)  # any scale: normalised on the way in
    assert not index.approximate and len(index) == 300
    for q in data[:20]:
        hits = index.search(q, 5)
        assert [k for k, _ in hits] == exact(data, q, 5)
        assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    index.remove([0, 299, 12345])  # an unknown key is ignored
    assert 0 not in index and 299 not in index and len(index) == 298
    assert 0 not in [k for k, _ in index.search(data[0], 10)]
    index.add([5], data[[7]])  # replacing a key moves it, does not duplicate it
    hits = index.search(data[7], 2)
    assert {k for k, _ in hits} == {5, 7} and len(index) == 298


def test_past_the_threshold_the_graph_answers_with_high_recall():
    data = clustered(3000)
    index = VectorIndex(48, exact_below=500)
    index.add(range(400), data[:400])
    assert not index.approximate
    for start in range(400, 3000, 200):  # grows incrementally, as tickets arrive
        index.add(range(start, start + 200), data[start : start + 200])
    assert index.wait(60)  # built in the background, and rebuilt as it outgrew its lists
    assert index.approximate and len(index) == 3000
    assert index._ivf is not None and index._ivf.trained_for * ann.REBUILD_GROWTH > 3000
    queries = clustered(100, seed=9)
    found = [{k for k, _ in index.search(q, 10)} for q in queries]
    recall = np.mean([len(f & set(exact(data, q, 10))) / 10 for f, q in zip(found, queries)])
    assert recall >= 0.95
    index.remove(range(0, 3000, 2))  # half the tickets close
    assert len(index) == 1500
    assert all(k % 2 == 1 for q in queries[:20] for k, _ in index.search(q, 10))


def test_wrong_dimensions_are_refused():
    index = VectorIndex(8)
    with pytest.raises(ValueError, match="9 dimensions"):
        index.add([1], np.ones((1, 9)))
    with pytest.raises(ValueError, match="3 dimensions"):
        index.search(np.ones(3))
    assert index.search(np.ones(8)) == []


@pytest.fixture
def held_build(monkeypatch):
    """The graph build waits for the test to release it (set the event)."""
    gate = threading.Event()
    build = VectorIndex._new_ivf

    def held(self, keys, vecs):
        assert gate.wait(60)
        return build(self, keys, vecs)

    monkeypatch.setattr(VectorIndex, "_new_ivf", held)
    yield gate
    gate.set()


@pytest.mark.parametrize("replay_under_lock", [ann.REPLAY_UNDER_LOCK, 1])
def test_while_the_graph_builds_the_exact_scan_answers_and_keeps_every_change(
    held_build, monkeypatch, replay_under_lock
):
    monkeypatch.setattr(ann, "REPLAY_UNDER_LOCK", replay_under_lock)  # 1: replayed outside the lock
    data = clustered(2400)
    index = VectorIndex(48, exact_below=1000)
    index.add(range(1200), data[:1200])  # past the threshold: the build starts, held
    assert index.building and not index.approximate
    index.add(range(1200, 2400), data[1200:])  # tickets arriving during the build
    index.remove(range(0, 200))  # and tickets closing
    index.add([300], data[[1300]])  # and one replaced
    kept = data.copy()
    kept[300] = data[1300]
    for q in clustered(20, seed=5):  # answered now, exactly, with the changes
        hits = [k for k, _ in index.search(q, 10)]
        order = [int(i) for i in np.argsort(-(kept @ (q / np.linalg.norm(q)))) if i >= 200][:10]
        assert hits == order
    held_build.set()
    assert index.wait(60) and not index.building
    assert index.approximate and len(index) == 2200
    assert 0 not in index and 199 not in index and 2399 in index
    queries = clustered(100, seed=11)
    found = [{k for k, _ in index.search(q, 10)} for q in queries]
    ranked = [
        [int(i) for i in np.argsort(-(kept @ (q / np.linalg.norm(q)))) if i >= 200][:10] for q in queries
    ]
    assert np.mean([len(f & set(r)) / 10 for f, r in zip(found, ranked)]) >= 0.95
    assert {k for k, _ in index.search(data[1300], 2)} == {300, 1300}  # the replaced key moved


def test_a_failed_build_leaves_the_exact_scan_answering(monkeypatch, caplog):
    def broken(self, keys, vecs):
        raise MemoryError("no room for an index")

    monkeypatch.setattr(VectorIndex, "_new_ivf", broken)
    data = clustered(600)
    index = VectorIndex(48, exact_below=500)
    index.add(range(600), data)
    assert index.wait(60)
    assert not index.approximate and len(index) == 600
    assert [k for k, _ in index.search(data[3], 5)] == exact(data, data[3], 5)
    assert "keeping the current one" in caplog.text
