"""Exports as other organisations' tools write them, trained on as a data scientist would.

Each shape is written by the test (never taken from ../shared/data) and read by both
readers: the in-memory one (``load_export``) and the streamed one (``--max-rows``:
``export_columns`` / ``load_sampled``). Each either reads as the text that was written or
stops with an ``InputError`` / a ``triage train`` error naming what was expected: never a
traceback, never a silent shift of columns.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.mapping import load_export, load_mapping
from training.stream import export_columns, load_sampled
from triage.errors import InputError
from triage_cli import main

TEAMS = ["network", "database", "desktop", "access"]
WORDS = {
    "network": "vpn wifi router switch latency dns",
    "database": "postgres query index deadlock backup table",
    "desktop": "laptop screen keyboard printer outlook office",
    "access": "password login account locked mfa sso",
}
MAPPING = "text: {subject: subject, body: body}\nlabels: {team: {column: team}}\n"


def _rows(n: int = 60, team=lambda i: TEAMS[i % 4]) -> list[list[str]]:
    rows = []
    for i in range(n):
        words = WORDS[team(i)].split()
        body = " ".join(words[(i + k) % len(words)] for k in range(6)) + " café “ok” €5"
        rows.append([f"T{i}", f"Ticket {i} {words[i % len(words)]}", body, team(i)])
    return rows


def _csv(rows: list[list[str]], delimiter: str = ",", header=("id", "subject", "body", "team")) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows([list(header), *rows])
    return out.getvalue()


def _files(tmp_path: Path, name: str, content: str | bytes, mapping: str = MAPPING) -> tuple[Path, Path]:
    data = tmp_path / name
    data.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    return data, tmp_path / "mapping.yaml"


def _both_readers_read_as_written(data: Path, mapping_path: Path, n: int = 60) -> None:
    mapping = load_mapping(mapping_path)
    whole = load_export(data, mapping)
    assert len(whole) == n
    assert sorted(set(whole.labels["team"])) == sorted(TEAMS), whole.labels["team"][:5]
    assert all('café "ok" €5' in t for t in whole.texts), whole.texts[0]
    assert whole.texts[0].startswith("ticket 0 "), whole.texts[0]
    assert {"subject", "body", "team"} <= set(export_columns(data))
    sample, _ = load_sampled(data, mapping, 30, "team")
    assert set(sample.labels["team"]) <= set(TEAMS), sample.labels["team"][:5]
    assert all('café "ok" €5' in t for t in sample.texts)


# ---------------------------------------------------------------- CSV shapes
def test_data_rows_ending_in_a_delimiter_are_read_without_shifting_the_columns(tmp_path):
    """``1,a,b,c,`` under ``id,subject,body,team`` (Oracle / SAP / many SQL-client exports):
    pandas took the id as the index and shifted every name one right, so ``team`` was empty
    and ``subject`` held the body (silently); pyarrow refused with "Expected 4 columns"."""
    lines = _csv(_rows()).splitlines()
    content = "\r\n".join([lines[0]] + [line + "," for line in lines[1:]]) + "\r\n"
    _both_readers_read_as_written(*_files(tmp_path, "trailing.csv", content))


def test_a_value_after_the_trailing_delimiter_names_the_row_in_both_readers(tmp_path):
    lines = _csv(_rows()).splitlines()
    body = [line + "," for line in lines[1:]]
    body[6] = lines[7] + ",stray"
    data, mapping_path = _files(tmp_path, "trailing.csv", "\r\n".join([lines[0], *body]) + "\r\n")
    mapping = load_mapping(mapping_path)
    with pytest.raises(InputError, match="row 7.*more fields than the header.*got 'stray'"):
        load_export(data, mapping)
    with pytest.raises(InputError, match="row 7.*more fields than the header.*got 'stray'"):
        load_sampled(data, mapping, 30, "team")


@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
def test_excel_s_sep_line_names_the_delimiter_and_is_not_read_as_the_header(tmp_path, delimiter):
    """Excel writes (and honours) ``sep=;`` as a first line: read as the header, the export
    had one column named ``sep=`` (in-memory) or failed with a pyarrow parse error."""
    content = f"sep={delimiter}\r\n" + _csv(_rows(), delimiter)
    _both_readers_read_as_written(*_files(tmp_path, "excel.csv", content.encode("cp1252")))


def test_a_sep_line_with_a_trailing_delimiter_and_repeated_names_reads_too(tmp_path):
    header = ("id", "subject", "body", "team", "Labels", "Labels")
    rows = [r + ["a", "b"] for r in _rows()]
    lines = _csv(rows, ";", header).splitlines()
    content = "sep=;\r\n" + "\r\n".join([lines[0]] + [line + ";" for line in lines[1:]]) + "\r\n"
    data, mapping_path = _files(tmp_path, "jira.csv", content)
    _both_readers_read_as_written(data, mapping_path)
    assert load_export(data, load_mapping(mapping_path)).counts["warnings"][0]["kind"] == "duplicate_columns"


def test_rows_made_only_of_delimiters_are_dropped_and_counted_in_both_readers(tmp_path):
    """Excel leaves ``,,,`` where rows were cleared: before, "row has no text (set
    drop_empty_text: true …)" stopped the training on a row that holds no ticket at all.
    A row with a label but no text is still refused (that one is a data problem)."""
    lines = _csv(_rows()).splitlines()
    content = "\r\n".join(lines[:4] + [",,,", ",,,", ",, ,"] + lines[4:] + [",,,", ",,,"]) + "\r\n"
    data, mapping_path = _files(tmp_path, "cleared.csv", content)
    mapping = load_mapping(mapping_path)
    whole = load_export(data, mapping)
    assert len(whole) == 60 and whole.counts["dropped"] == {"blank_row": 5}
    assert sorted(set(whole.labels["team"])) == sorted(TEAMS)
    sample, _ = load_sampled(data, mapping, 30, "team")
    assert set(sample.labels["team"]) <= set(TEAMS)
    data.write_text(content.replace(",, ,", ",,,network"), encoding="utf-8")
    with pytest.raises(InputError, match="row 6, column body: row has no text"):
        load_export(data, mapping)


# ---------------------------------------------------------------- JSON encodings
def _records() -> list[dict]:
    return [{"subject": s, "body": b, "team": t, "via": {"channel": "email"}} for _, s, b, t in _rows()]


@pytest.mark.parametrize(
    "name, encode",
    [
        ("notepad_bom.jsonl", lambda recs: ("\ufeff" + "\n".join(map(json.dumps, recs))).encode("utf-8")),
        ("powershell.json", lambda recs: json.dumps({"tickets": recs}).encode("utf-16")),
        ("powershell_lines.jsonl", lambda recs: "\r\n".join(map(json.dumps, recs)).encode("utf-16")),
        (
            "legacy.jsonl",
            lambda recs: "\n".join(json.dumps(r, ensure_ascii=False) for r in recs).encode("cp1252"),
        ),
    ],
)
def test_json_exports_in_other_encodings_are_read_by_both_readers(tmp_path, name, encode):
    """A byte-order mark (Notepad), UTF-16 (Windows PowerShell's ``Out-File``) or
    Windows-1252 bytes: before, "Expected object or value at position 0" or "'utf-8' codec
    can't decode byte 0xff" for both readers."""
    _both_readers_read_as_written(*_files(tmp_path, name, encode(_records())))


# ---------------------------------------------------------------- not what the name says
def test_a_file_named_parquet_that_is_not_one_is_refused_by_the_streamed_reader_too(tmp_path):
    data, mapping_path = _files(tmp_path, "tickets.parquet", b"id,subject\nT1,hello\n")
    with pytest.raises(InputError, match="cannot read the export as parquet"):
        load_export(data, load_mapping(mapping_path))
    with pytest.raises(InputError, match="cannot read the export as parquet") as err:
        load_sampled(data, load_mapping(mapping_path), 30, "team")
    assert str(data) in str(err.value)


# ---------------------------------------------------------------- through `triage train`
def _train(tmp_path: Path, data: Path, mapping: Path, *extra: str) -> int:
    args = ["train", "--data", str(data), "--mapping", str(mapping), "--encoder", "none"]
    return main([*args, "--no-tracking", "--out", str(tmp_path / "models"), *extra])


@pytest.mark.parametrize("max_rows", [[], ["--max-rows", "200"]])
def test_a_label_column_that_is_99_percent_one_class_is_refused_saying_why(tmp_path, capsys, max_rows):
    """297 rows of one team and 3 of another: scikit-learn's "needs samples of at least 2
    classes" traceback from inside a cross-validation fold (through joblib), exit 1."""
    from training.pipeline import DEFAULT_FRACTIONS, assign_splits

    rows = _rows(300, team=lambda i: "network")
    data, mapping = _files(tmp_path, "skewed.csv", _csv(rows))
    splits = assign_splits(load_export(data, load_mapping(mapping)).texts, DEFAULT_FRACTIONS, 0)
    for i in [int(i) for i in (splits == "train").nonzero()[0][:1]] + [int((splits != "train").argmax())]:
        rows[i][3] = "database"  # one in the training split (in one fold), one outside
    data.write_text(_csv(rows), encoding="utf-8")
    assert _train(tmp_path, data, mapping, *max_rows) == 2
    err = capsys.readouterr().err
    assert "head team not trained: " in err
    assert "training rows are 'network' and the other classes have " in err
    assert "cross-validation folds" in err
    assert "no head could be trained, so no bundle was written" in err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_label_column_blank_in_every_row_is_an_error_not_bundle_none(tmp_path, capsys):
    """Before: "bundle: None" on stdout and exit 0 (a script went on to serve nothing)."""
    rows = [r[:3] + [""] for r in _rows()]
    data, mapping = _files(tmp_path, "blank.csv", _csv(rows))
    assert _train(tmp_path, data, mapping) == 2
    err = capsys.readouterr().err
    assert "head team not trained: no labelled rows" in err
    assert "no head could be trained" in err


def test_a_text_column_of_a_few_templates_is_named_as_the_reason_not_too_few_rows(tmp_path, capsys):
    """Hundreds of labelled rows of 3 texts (a category or template mapped as the body): the
    split keeps identical texts together, so a split came out empty. Before: "too few
    labelled rows to split", said of 300 labelled rows."""
    rows = [
        [f"T{i}", "", ["vpn down", "password reset", "printer jam"][i % 3], TEAMS[i % 3]] for i in range(300)
    ]
    data, mapping = _files(tmp_path, "templates.csv", _csv(rows))
    assert _train(tmp_path, data, mapping) == 2
    err = capsys.readouterr().err
    assert "too few distinct texts to split into train, calibration and holdout" in err
    assert "the 300 labelled rows hold 3 different texts" in err


def test_a_skipped_head_beside_a_trained_one_is_said_and_the_bundle_written(tmp_path, capsys):
    rows = [r + ["only"] for r in _rows()]
    data, mapping = _files(
        tmp_path,
        "two.csv",
        _csv(rows, header=("id", "subject", "body", "team", "kind")),
        "text: {subject: subject, body: body}\nlabels: {team: team, kind: kind}\n",
    )
    assert _train(tmp_path, data, mapping) == 0
    assert "head kind not trained: one class only in the training split ('only')" in capsys.readouterr().err
    assert len(list((tmp_path / "models").iterdir())) == 1


@pytest.mark.parametrize("max_rows", [[], ["--max-rows", "100"]])
def test_a_body_mapped_to_an_id_column_is_refused_naming_the_columns(tmp_path, capsys, max_rows):
    """Texts with no word two rows share (``1``, ``2``, ...): scikit-learn's "After pruning,
    no terms remain" traceback before."""
    records = [{"subject": None, "body": i, "team": TEAMS[i % 4]} for i in range(120)]
    data, mapping = _files(tmp_path, "ids.json", json.dumps(records))
    assert _train(tmp_path, data, mapping, *max_rows) == 2
    err = capsys.readouterr().err
    assert "the text columns 'subject' and 'body' hold no word that two rows share" in err
    assert "expected ticket subjects or descriptions, got ['0', '" in err


# ---------------------------------------------------------------- round trip, any shape
FUZZ_EXAMPLES = int(os.environ.get("TRIAGE_FUZZ_EXAMPLES", "25"))
_cell = st.text(
    st.characters(codec="cp1252", exclude_categories=("Cs", "Cc")) | st.sampled_from(',;|\t"\n\r'),
    max_size=30,
)


@settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(st.tuples(_cell, _cell), min_size=1, max_size=12),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    sep_line=st.booleans(),
    trailing=st.booleans(),
)
def test_any_csv_shape_reads_back_the_labels_as_written_in_both_readers(
    tmp_path_factory, cells, delimiter, encoding, sep_line, trailing
):
    """A round trip, not merely "no traceback": the shapes above in any combination, with
    cells holding delimiters, quotes and line breaks; each row's label comes back exactly
    (after the readers' stripping) in the in-memory and the streamed reader."""
    tmp_path = tmp_path_factory.mktemp("shape")
    rows = [
        [f"T{i}", f"ticket {i} " + subject, body, f"team{i % 3}"] for i, (subject, body) in enumerate(cells)
    ]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["id", "subject", "body", "team"])
    for row in rows:
        line = io.StringIO()
        csv.writer(line, delimiter=delimiter, lineterminator="\r\n").writerow(row)  # CR/LF in a cell: quoted
        out.write(line.getvalue()[:-2] + (delimiter if trailing else "") + "\r\n")
    text = (f"sep={delimiter}\r\n" if sep_line else "") + out.getvalue()
    data, mapping_path = _files(tmp_path, "any.csv", text.encode(encoding))
    mapping = load_mapping(mapping_path)
    expected = [r[3] for r in rows]
    assert load_export(data, mapping).labels["team"] == expected
    sample, _ = load_sampled(data, mapping, 50, "team")
    assert sorted(sample.labels["team"]) == sorted(expected)
