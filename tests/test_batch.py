"""triage embed / triage score: the same Parquet from the local engine and from Ray local mode,
and training reads the embeddings back instead of embedding again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_training import write_export
from training.batch import PrecomputedEncoder, read_scores, read_vectors, text_key
from triage.encoder import HashingEncoder
from triage_cli import main


def _embed(tmp_path, data, mapping, engine: str, capsys):
    out = tmp_path / f"emb-{engine}"
    rc = main(
        [
            "embed",
            "--data",
            str(data),
            "--mapping",
            str(mapping),
            "--out",
            str(out),
            "--encoder",
            "hashing",
            "--engine",
            engine,
            "--batch-size",
            "40",
            "--json",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out, summary


def _train(tmp_path, data, mapping, embeddings, capsys):
    models = tmp_path / "models"
    rc = main(
        [
            "train",
            "--data",
            str(data),
            "--mapping",
            str(mapping),
            "--out",
            str(models),
            "--encoder",
            "hashing",
            "--no-tracking",
            "--embeddings",
            str(embeddings),
        ]
    )
    assert rc == 0
    capsys.readouterr()
    return next(models.iterdir())


def test_local_embed_writes_vectors_training_reads_back(tmp_path, capsys):
    data, mapping = write_export(tmp_path, n_per_team=8, seed=2)
    out, summary = _embed(tmp_path, data, mapping, "local", capsys)
    assert summary["engine"] == "local" and summary["rows"] > 0
    keys, vectors = read_vectors(out)
    assert len(keys) == summary["rows"] and vectors.shape == (summary["rows"], 256)
    from training.batch import export_texts

    texts = export_texts(data, mapping)["text"].tolist()
    assert keys == [text_key(t) for t in texts]
    expected = HashingEncoder().encode(texts)
    assert np.allclose(vectors, expected, atol=1e-6)
    enc = PrecomputedEncoder(HashingEncoder(), out)  # training's view of the same folder
    got = enc.encode(texts[:5] + ["a text nobody embedded"])
    assert enc.hits == 5 and enc.misses == 1
    assert np.allclose(got[:5], expected[:5], atol=1e-6)
    assert enc.reference() == HashingEncoder().reference()


def test_embed_refuses_a_folder_that_already_holds_output(tmp_path, capsys):
    data, mapping = write_export(tmp_path, n_per_team=4, seed=3)
    _embed(tmp_path, data, mapping, "local", capsys)
    with pytest.raises(FileExistsError):
        main(
            [
                "embed",
                "--data",
                str(data),
                "--mapping",
                str(mapping),
                "--out",
                str(tmp_path / "emb-local"),
                "--encoder",
                "hashing",
            ]
        )


@pytest.mark.slow
def test_ray_local_mode_embeds_and_scores_and_training_reads_its_parquet(tmp_path, capsys):
    pytest.importorskip("ray")
    data, mapping = write_export(tmp_path, n_per_team=10, seed=4)
    local, _ = _embed(tmp_path, data, mapping, "local", capsys)
    ray_out, summary = _embed(tmp_path, data, mapping, "ray", capsys)
    assert summary["engine"] == "ray"
    keys_l, vec_l = read_vectors(local)
    keys_r, vec_r = read_vectors(ray_out)
    order = {k: i for i, k in enumerate(keys_r)}
    assert sorted(keys_l) == sorted(keys_r)  # Ray may write rows in another order
    assert np.allclose(vec_l, vec_r[[order[k] for k in keys_l]], atol=1e-6)

    bundle = _train(tmp_path, data, mapping, ray_out, capsys)
    scores = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"scores-{engine}"
        assert (
            main(
                [
                    "score",
                    "--bundle",
                    str(bundle),
                    "--data",
                    str(data),
                    "--mapping",
                    str(mapping),
                    "--out",
                    str(out),
                    "--engine",
                    engine,
                    "--json",
                ]
            )
            == 0
        )
        capsys.readouterr()
        scores[engine] = read_scores(out)
    assert len(scores["ray"]) == len(keys_l)
    assert {"team_label", "team_probability", "team_decision"} <= set(scores["ray"].columns)
    assert scores["ray"].equals(scores["local"])


def test_label_quality_reads_the_score_parquet_and_flags_relabelled_rows(tmp_path, capsys):
    """`triage label-quality --scores DIR`: the review list comes from `triage score`'s Parquet."""
    import pandas as pd

    from training import label_quality as lq

    data, mapping = write_export(tmp_path, n_per_team=30, seed=4)
    models = tmp_path / "models"
    assert main(["train", "--data", str(data), "--mapping", str(mapping), "--out", str(models),
                 "--encoder", "none", "--heads", "team", "--no-tracking"]) == 0  # fmt: skip
    bundle = next(models.iterdir())
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    teams = sorted(t for t in frame["Assigned Queue"].unique() if t)
    wrong = [i for i in range(0, len(frame), 17) if frame.at[i, "Assigned Queue"]]
    for i in wrong:  # a busy agent picked the next team in the list
        frame.at[i, "Assigned Queue"] = teams[(teams.index(frame.at[i, "Assigned Queue"]) + 1) % len(teams)]
    relabelled = tmp_path / "relabelled.csv"
    frame.to_csv(relabelled, index=False)
    scores = tmp_path / "scores"
    assert main(["score", "--bundle", str(bundle), "--data", str(relabelled), "--mapping", str(mapping),
                 "--out", str(scores), "--engine", "local", "--json"]) == 0  # fmt: skip
    capsys.readouterr()

    flags, summary = lq.run(relabelled, mapping, heads=["team"], scores=scores, min_probability=0.5)
    flagged = {f.row for f in flags}
    assert summary["team"]["source"] == str(scores) and summary["team"]["rows"] > 0
    caught = flagged & {i + 1 for i in wrong}  # 1-based export rows
    assert len(caught) >= len(wrong) // 2, (sorted(flagged), [i + 1 for i in wrong])
    assert len(flagged - caught) <= len(wrong)  # the list is mostly the relabelled rows
    assert all(f.suggested != f.given and f.confidence >= 0.5 for f in flags)

    out = tmp_path / "review.csv"
    assert main(["label-quality", "--data", str(relabelled), "--mapping", str(mapping), "--head", "team",
                 "--scores", str(scores), "--min-probability", "0.5", "--out", str(out)]) == 0  # fmt: skip
    assert "from " + str(scores) in capsys.readouterr().out
    assert len(pd.read_csv(out)) == len(flags)
