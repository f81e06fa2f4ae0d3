"""Embeddings only where they can win (training/screening.py, issue 15 §3)."""

from __future__ import annotations

import hashlib

import numpy as np

from test_training import TEAMS, write_export
from training.screening import screen_vectors


class NoiseEncoder:
    """Vectors that say nothing about the text: a vector candidate cannot beat TF-IDF on them."""

    name = "noise"
    dim = 16

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts, *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
        v = np.asarray([np.random.default_rng(s).normal(size=self.dim) for s in seeds], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)  # unit vectors, as every encoder gives

    def reference(self) -> dict:
        return {"kind": "noise"}


class OracleEncoder(NoiseEncoder):
    """Vectors that know the answer TF-IDF has to guess (the label, looked up by text)."""

    def __init__(self, answers: dict[str, str], classes: list[str]) -> None:
        super().__init__()
        self.answers, self.classes = answers, classes
        self.dim = len(classes)

    def encode(self, texts, *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, self.classes.index(self.answers[t])] = 1.0
        return out


def _data(n: int = 600, seed: int = 0):
    """Texts whose words say the team only weakly (TF-IDF gets some of them)."""
    rng = np.random.default_rng(seed)
    teams = ["a", "b", "c"]
    texts, labels = [], []
    for i in range(n):
        team = teams[i % 3]
        hint = f"{team}word" if rng.random() < 0.5 else f"{teams[rng.integers(3)]}word"
        texts.append(f"ticket {i} {hint} " + " ".join(f"w{rng.integers(50)}" for _ in range(8)))
        labels.append(team)
    return texts, {"team": labels}, np.arange(n)


def test_vectors_that_cannot_beat_tfidf_are_not_kept():
    texts, labels, rows = _data()
    enc = NoiseEncoder()
    screen = screen_vectors(texts, labels, rows, enc, min_gain=0.005, rows=300, class_weight="balanced")
    head = screen["heads"]["team"]
    assert not screen["keep"] and not head["keep"]
    assert head["oof_macro_f1"]["tfidf"] > head["oof_macro_f1"]["embedding"]
    assert enc.encoded == head["rows"] <= 300  # only the sample was embedded


def test_vectors_that_win_on_the_sample_are_kept():
    texts, labels, rows = _data()
    enc = OracleEncoder(dict(zip(texts, labels["team"])), ["a", "b", "c"])
    screen = screen_vectors(texts, labels, rows, enc, min_gain=0.005, rows=300, class_weight="balanced")
    assert screen["keep"] and screen["heads"]["team"]["gain"] > 0.1


def test_training_skips_embedding_every_row_when_the_screen_says_tfidf_wins(tmp_path, monkeypatch):
    from training import screening
    from training.pipeline import train

    monkeypatch.setattr(screening, "SCREEN_MIN_ROWS", 100)  # the export here is small
    monkeypatch.setattr(screening, "SCREEN_ROWS", 120)
    data, mapping = write_export(tmp_path, n_per_team=60, seed=6)
    enc = NoiseEncoder()
    result = train(data, mapping, tmp_path / "models", encoder=enc, cv=3, progress=False, heads=["team"])
    screen = result.report["vector_screen"]
    assert screen["keep"] is False and screen["heads"]["team"]["rows"] <= 120
    assert enc.encoded == screen["rows_embedded"] < len(TEAMS) * 60  # the rest never embedded
    assert not {"embedding", "combined"} & set(result.report["heads"]["team"]["candidates"])
    assert result.manifest["encoder"] is None  # served without an encoder: TF-IDF only

    enc = NoiseEncoder()  # the same run unscreened embeds every row, as before
    result = train(data, mapping, None, encoder=enc, cv=3, progress=False, heads=["team"], screen=False)
    assert result.report["vector_screen"] is None and enc.encoded >= len(TEAMS) * 60 * 0.9
    assert "combined" in result.report["heads"]["team"]["candidates"]
