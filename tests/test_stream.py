"""Exports read as a stream (training/stream.py) and the full-data incremental candidate."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from test_training import TEAMS, write_export
from training.mapping import load_export, load_mapping
from training.sampling import sample_dataset
from training.stream import census, load_sampled, scan


def _concat(parts):
    texts, rows, labels = [], [], {}
    for p in parts:
        texts += p.texts
        rows += p.source_rows
        for h, v in p.labels.items():
            labels.setdefault(h, []).extend(v)
    return texts, rows, labels


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_streamed_slices_hold_the_same_rows_as_pandas(tmp_path, fmt):
    data, mapping_path = write_export(tmp_path, n_per_team=30, seed=3)
    if fmt != "csv":  # the same rows in another container
        frame = pd.read_csv(data, dtype=str, keep_default_na=False)
        data = tmp_path / f"export.{fmt}"
        frame.to_parquet(data) if fmt == "parquet" else frame.to_json(data, orient="records", lines=True)
    mapping = load_mapping(mapping_path)
    whole = load_export(data, mapping)
    texts, rows, labels = _concat(scan(data, mapping, batch_rows=37))  # slices cut mid-class
    assert texts == whole.texts and rows == whole.source_rows
    assert labels == whole.labels


def test_csv_cells_with_newlines_empty_and_na_text_read_as_pandas_reads_them(tmp_path):
    frame = pd.DataFrame(
        {
            "title": ["first\nline two", "", "NA", "plain"],
            "body": ["body, with comma", "only body", "n/a", 'quote "x"'],
            "team": ["A", "B", "", "A"],
        }
    )
    data = tmp_path / "e.csv"
    frame.to_csv(data, index=False)
    mapping_path = tmp_path / "m.yaml"
    mapping_path.write_text("text: {subject: title, body: body}\nlabels: {team: team}\n")
    mapping = load_mapping(mapping_path)
    whole = load_export(data, mapping)
    texts, rows, labels = _concat(scan(data, mapping, batch_rows=2))
    assert (texts, rows, labels) == (whole.texts, whole.source_rows, whole.labels)


def test_streamed_sample_is_the_in_memory_sample(tmp_path):
    data, mapping_path = write_export(tmp_path, n_per_team=60, seed=4)
    mapping = load_mapping(mapping_path)
    expected = sample_dataset(load_export(data, mapping), 150, "team", seed=2)
    got, info = load_sampled(data, mapping, 150, "team", seed=2, batch_rows=41)
    assert got.source_rows == expected.source_rows and got.texts == expected.texts
    assert got.labels == expected.labels
    assert got.counts["rows_read"] == info.rows == len(TEAMS) * 60
    assert got.counts["sampled"]["rows_after"] == len(got) <= 150


def test_census_counts_classes_over_the_whole_file_for_min_class_count(tmp_path):
    frame = pd.DataFrame(
        {"body": [f"ticket {i}" for i in range(30)], "team": ["big"] * 24 + ["rare"] * 3 + ["mid"] * 3}
    )
    data = tmp_path / "e.csv"
    frame.to_csv(data, index=False)
    mapping_path = tmp_path / "m.yaml"
    mapping_path.write_text("text: {body: body}\nlabels: {team: {column: team, min_class_count: 4}}\n")
    mapping = load_mapping(mapping_path)
    info = census(data, mapping, "team", batch_rows=4)  # no slice holds 4 rows of any small class
    assert info.counts["team"] == {"big": 24, "rare": 3, "mid": 3}
    assert info.rare == {"team": {"rare": 3, "mid": 3}}
    _, _, labels = _concat(scan(data, mapping, rare=info.rare, batch_rows=4))
    assert labels == load_export(data, mapping).labels  # the cut is the in-memory cut


def test_max_rows_trains_an_incremental_candidate_on_the_rest_of_the_file(tmp_path):
    from training.pipeline import train
    from triage.incremental import IncrementalHead

    data, mapping = write_export(tmp_path, n_per_team=120, seed=5)
    result = train(
        data,
        mapping,
        tmp_path / "models",
        candidates=("reference", "tfidf", "incremental"),
        cv=3,
        progress=False,
        max_rows=300,
        heads=["team"],
    )
    team = result.report["heads"]["team"]
    assert {"reference", "tfidf", "incremental"} <= set(team["candidates"])
    assert team["candidates_holdout"]["incremental"] > 0.5  # it learnt the teams from the rest
    # scored on the sample's rows, so it was never fitted on them: the rows it learnt are
    # the file's non-holdout rows outside the sample
    sampled = result.report["data"]["sampled"]
    if team["chosen"] == "incremental":
        assert isinstance(result.heads["team"], IncrementalHead)
        assert 0 < team["refit"]["rows"] < sampled["rows_before"] - sampled["rows_after"]
    from triage.predict import Triager
    from triage.ticket import Ticket

    tri = Triager.from_bundle(result.bundle_path)
    out = tri.classify([Ticket(subject="printer jam", body="the printer on floor 3 is jammed")])
    assert out[0]["fields"]["team"]["label"] in TEAMS


def test_incremental_head_is_served_from_a_bundle_when_chosen(tmp_path):
    """The head pickles, reloads and classifies like any other (no term names to explain)."""
    from triage.classifiers import Features
    from triage.incremental import IncrementalHead

    texts = [f"printer toner jam {i}" for i in range(60)] + [f"password reset locked {i}" for i in range(60)]
    y = ["hw"] * 60 + ["access"] * 60
    head = IncrementalHead(["access", "hw"], {"access": 60, "hw": 60}, n_features=2**12)
    order = [i // 2 + (60 if i % 2 else 0) for i in range(120)]  # the classes interleaved
    for lo in range(0, 120, 20):
        head.learn([texts[i] for i in order[lo : lo + 20]], [y[i] for i in order[lo : lo + 20]])
    head.assemble(Features(["printer toner empty", "reset my password"] * 10), ["hw", "access"] * 10)
    import pickle

    again = pickle.loads(pickle.dumps(head))
    proba, expl, idx = again.predict_explained(Features(["printer toner jam", "password locked"]))
    assert list(again.classes_[idx]) == ["hw", "access"] and expl == [[], []]
    assert proba.shape == (2, 2)


@pytest.mark.slow  # ~1 min: a 150 MB export written, two training runs in subprocesses
def test_max_rows_training_memory_does_not_grow_with_the_export(tmp_path):
    """Peak RSS of a whole ``--max-rows`` training run: a 150 MB export costs about what a
    1.5 MB one does (read into pandas, its cells alone would take several hundred MB more).
    The incremental head is left out here only for time: it hashes fixed-size chunks."""
    teams = ["Hardware", "Access", "HR", "Storage"]
    words = {t: [f"{t.lower()}w{j}" for j in range(60)] for t in teams}
    mapping = tmp_path / "m.yaml"
    mapping.write_text("text: {body: body}\nlabels: {team: team}\n")
    peaks = {}
    for n in (1_500, 150_000):
        data = tmp_path / f"e{n}.csv"
        body = [" ".join(words[teams[i % 4]][(i * k) % 60] for k in range(1, 110)) for i in range(n)]
        pd.DataFrame({"body": body, "team": [teams[i % 4] for i in range(n)]}).to_csv(data, index=False)
        script = textwrap.dedent(f"""
            from pathlib import Path
            from training.pipeline import train
            r = train({str(data)!r}, {str(mapping)!r}, None, candidates=("reference", "tfidf"),
                      cv=3, progress=False, max_rows=1000, heads=["team"])
            assert r.report["data"]["rows"] == {n}
            # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would start at this test's RSS
            status = Path("/proc/self/status").read_text()
            print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        peaks[n] = int(out.stdout.split()[-1]) / 1024  # MiB
        data.unlink()
    assert peaks[150_000] - peaks[1_500] < 200, peaks  # load_export alone: +575 MB
