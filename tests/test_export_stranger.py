"""Exports a stranger hands over: compressed, mixed encodings, short rows.

Each shape is written by the test and read by both readers, the in-memory one
(``load_export``) and the streamed one (``export_columns`` / ``load_sampled``, what
``--max-rows`` uses): each reads as written or both refuse it naming what was expected.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import zipfile
from pathlib import Path

import pytest

from training.mapping import load_export, load_mapping
from training.stream import export_columns, load_sampled
from triage.errors import InputError
from triage_cli import main

TEAMS = ["network", "database", "desktop", "access"]
MAPPING = "text: {subject: subject, body: body}\nlabels: {team: {column: team}}\n"
HEADER = ["id", "subject", "body", "team"]


def _rows(n: int = 40) -> list[list[str]]:
    return [[f"T{i}", f"Ticket {i} vpn", f"body {i} café “ok” €5", TEAMS[i % 4]] for i in range(n)]


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([HEADER, *rows])
    return out.getvalue().encode("utf-8")


def _jsonl(rows: list[list[str]]) -> bytes:
    return "\n".join(json.dumps(dict(zip(HEADER, r)), ensure_ascii=False) for r in rows).encode("utf-8")


def _zip(name: str, data: bytes, *extra: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
        for other in extra:
            z.writestr(*other)
    return out.getvalue()


def _mapping(tmp_path: Path):
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    return load_mapping(tmp_path / "mapping.yaml")


def _read_both(path: Path, mapping) -> tuple:
    whole = load_export(path, mapping)
    sample, _ = load_sampled(path, mapping, 20, "team")
    return whole, sample, export_columns(path)


# ---------------------------------------------------------------- compressed exports
@pytest.mark.parametrize(
    "name, pack",
    [
        ("tickets.csv.gz", lambda: gzip.compress(_csv(_rows()))),
        ("tickets.csv.bz2", lambda: bz2.compress(_csv(_rows()))),
        ("tickets.csv.xz", lambda: lzma.compress(_csv(_rows()))),
        # a zip as macOS's "Compress" writes it: a folder and a __MACOSX resource fork
        (
            "export.zip",
            lambda: _zip("export/tickets.csv", _csv(_rows()), ("__MACOSX/export/._tickets.csv", b"\0")),
        ),
        ("tickets.jsonl.gz", lambda: gzip.compress(_jsonl(_rows()))),
        (
            "tickets.json.gz",
            lambda: gzip.compress(json.dumps({"tickets": [dict(zip(HEADER, r)) for r in _rows()]}).encode()),
        ),
        ("tickets.zip", lambda: _zip("tickets.jsonl", _jsonl(_rows()))),
        # a gzip file that kept its inner name (a browser's download, a mail gateway)
        ("tickets.csv", lambda: gzip.compress(_csv(_rows()))),
    ],
)
def test_a_compressed_export_is_read_by_both_readers_as_its_inner_file(tmp_path, name, pack):
    """Before: "unsupported export format (expected one of .csv, …, got '.gz')"; a gzip
    file named .csv: "Error tokenizing data" from pandas, a garbage line from pyarrow."""
    path = tmp_path / name
    path.write_bytes(pack())
    whole, sample, columns = _read_both(path, _mapping(tmp_path))
    assert len(whole) == 40 and whole.path == path
    assert whole.texts[0].startswith("ticket 0 vpn body 0 café"), whole.texts[0]
    assert sorted(set(whole.labels["team"])) == sorted(TEAMS)
    assert len(sample) == 20 and set(sample.labels["team"]) == set(TEAMS)
    assert set(HEADER) <= set(columns)


@pytest.mark.parametrize(
    "name, content, said",
    [
        ("tickets.csv.gz", _csv(_rows()), "named .gz but is not gzip-compressed"),
        ("two.zip", _zip("a.csv", b"x", ("b.csv", b"y")), "must hold exactly one file"),
        ("empty.zip", _zip("__MACOSX/._a.csv", b"x"), "an empty archive"),
        ("broken.zip", b"PK\x03\x04 not really", "cannot read the zip archive"),
        ("cut.csv.gz", gzip.compress(_csv(_rows()))[:-40], "cannot unpack the gzip export"),
        ("tickets.csv.zst", b"\x28\xb5\x2f\xfd", "unpack it first (zstd -d tickets.csv.zst)"),
        ("tickets.tar.gz", b"x", "named .gz but is not gzip"),
        ("tickets.gz", gzip.compress(_csv(_rows())), "unsupported export format"),
        # a workbook is a zip too: refused as a sheet, not unpacked
        (
            "tickets.xlsx",
            _zip("xl/workbook.xml", b"x", ("[Content_Types].xml", b"y")),
            "save the sheet as CSV",
        ),
    ],
)
def test_a_compressed_export_that_cannot_be_read_is_refused_saying_why(tmp_path, name, content, said):
    path = tmp_path / name
    path.write_bytes(content)
    mapping = _mapping(tmp_path)
    for read in (lambda: load_export(path, mapping), lambda: load_sampled(path, mapping, 20, "team")):
        with pytest.raises(InputError, match=said.replace("(", r"\(").replace(")", r"\)")):
            read()


def test_an_error_inside_a_compressed_export_names_the_export_not_its_temporary_copy(tmp_path):
    path = tmp_path / "tickets.csv.gz"
    path.write_bytes(gzip.compress(_csv(_rows()) + b"T9,a,b,c,d\r\n"))
    mapping = _mapping(tmp_path)
    for read in (lambda: load_export(path, mapping), lambda: load_sampled(path, mapping, 20, "team")):
        with pytest.raises(InputError) as caught:
            read()
        assert f"file {path}" in str(caught.value) and "triage-unpacked-" not in str(caught.value)


def test_triage_train_reads_a_zipped_export(tmp_path, capsys):
    path = tmp_path / "export.zip"
    rows = [[f"T{i}", f"{t} issue {i}", f"{t} {t} problem", t] for i, t in enumerate(TEAMS * 30)]
    path.write_bytes(_zip("tickets.csv", _csv(rows)))
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    code = main(
        [
            "train",
            "--data",
            str(path),
            "--mapping",
            str(tmp_path / "mapping.yaml"),
            "--out",
            str(tmp_path / "models"),
            "--encoder",
            "none",
            "--no-tracking",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert len(list((tmp_path / "models").iterdir())) == 1


# ---------------------------------------------------------------- mixed encodings
def test_a_file_mixing_utf8_and_windows_1252_rows_reads_each_as_itself_and_says_so(tmp_path):
    """An export appended to by two tools. Before: decoded as Windows-1252 as a whole, its
    UTF-8 rows read "cafÃ©" and nothing said so."""
    old = _csv(_rows(20)).decode("utf-8")
    new = io.StringIO()
    csv.writer(new, lineterminator="\r\n").writerows(
        [[f"N{i}", f"Ticket {i} vpn", "naïve Müller œuvre “ok” €5", TEAMS[i % 4]] for i in range(20)]
    )
    path = tmp_path / "mixed.csv"
    path.write_bytes(old.encode("utf-8") + new.getvalue().encode("cp1252"))
    whole, sample, _ = _read_both(path, _mapping(tmp_path))
    assert all('café "ok" €5' in t for t in whole.texts[:20]), whole.texts[0]
    assert all('naïve müller œuvre "ok" €5' in t for t in whole.texts[20:]), whole.texts[20]
    assert not any("Ã" in t or "â€" in t for t in whole.texts + sample.texts)
    notes = [w for w in whole.counts["warnings"] if w["kind"] == "mixed_encoding"]
    assert len(notes) == 1 and "mixes encodings" in notes[0]["message"], whole.counts["warnings"]
    assert [w["kind"] for w in sample.counts["warnings"]] == ["mixed_encoding"]


def test_a_windows_1252_file_with_capitals_before_quotes_is_not_taken_for_mixed(tmp_path):
    """ "ÉTÉ”" is C9 94 in Windows-1252: valid UTF-8 by accident ("ɔ"); still one encoding."""
    rows = [[f"T{i}", "L’ÉTÉ” À «PRÊT…»", "naïve façade", TEAMS[i % 4]] for i in range(20)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([HEADER, *rows])
    path = tmp_path / "cp1252.csv"
    path.write_bytes(out.getvalue().encode("cp1252"))
    whole, _, _ = _read_both(path, _mapping(tmp_path))
    assert "l'été\" à «prêt…» naïve façade" in whole.texts[0], whole.texts[0]
    assert whole.counts["warnings"] == []


# ---------------------------------------------------------------- short rows
# a ticket whose body holds a line break nobody quoted: two records, each short
BROKEN = b"T900,Ticket 900 vpn,first line\r\nsecond line,network\r\n"


def _with_broken(rows: list[list[str]], at: list[int], piece: bytes = BROKEN) -> tuple[bytes, dict[int, str]]:
    """The CSV of ``rows`` with ``piece`` written before each row index in ``at``, and the
    id of the ticket each full record number holds."""
    lines = _csv(rows).split(b"\r\n")
    out, ids, record = [lines[0]], {}, 0
    for i, line in enumerate(lines[1:-1]):
        if i in at:
            out.append(piece.rstrip(b"\r\n"))
            record += piece.count(b"\r\n")
        out.append(line)
        record += 1
        ids[record] = rows[i][0]
    return b"\r\n".join(out) + b"\r\n", ids


def test_a_few_rows_shorter_than_the_header_are_skipped_counted_and_named_by_both_readers(tmp_path):
    """Before: both readers refused the whole export for one ticket cut in two by a line break
    nobody quoted (and earlier pandas padded both halves into two wrong rows: the label
    "network" in the next row's subject). Now they are skipped, counted and named by row and
    line, and every other row keeps its own record number in the file."""
    path = tmp_path / "short.csv"
    data, ids = _with_broken(_rows(400), at=[50, 200])
    path.write_bytes(data)
    mapping = _mapping(tmp_path)
    whole, sample, _ = _read_both(path, mapping)
    for read in (whole, sample):
        assert read.counts["dropped"]["short_row"] == 4
        assert read.counts["rows_read"] == 404
        (note,) = [n for n in read.counts["warnings"] if n["kind"] == "short_rows"]
        assert note["first"][:2] == [{"row": 51, "line": 52}, {"row": 52, "line": 53}]
        assert "row 51 (line 52: 'T900,Ticket 900 vpn,first line')" in note["message"]
        assert not {51, 52, 203, 204} & set(read.source_rows)
        for row, text in zip(read.source_rows, read.texts):  # each row is the ticket written there
            assert text.startswith(f"ticket {ids[row][1:]} vpn "), (row, text)
        assert not any("second line" in t or "900" in t for t in read.texts)
    assert len(whole) == 400


@pytest.mark.parametrize("reader", ["whole", "streamed"])
def test_an_error_after_a_skipped_short_row_names_the_row_in_the_file(tmp_path, reader):
    """Row numbers in every message count the skipped rows: a user opens the file there."""
    rows = _rows(300)
    rows[120][1:3] = ["", ""]  # no text: refused, naming the row
    path = tmp_path / "short.csv"
    data, ids = _with_broken(rows, at=[50])
    path.write_bytes(data)
    mapping = _mapping(tmp_path)
    with pytest.raises(InputError, match="row has no text") as caught:
        load_export(path, mapping) if reader == "whole" else load_sampled(path, mapping, 1000, "team")
    row = next(r for r, i in ids.items() if i == "T120")
    assert row == 123 and "row 123" in str(caught.value)


@pytest.mark.parametrize("piece, said", [(BROKEN * 4, "8 of 308 rows"), (b";\r\n" * 5, "5 of 305 rows")])
def test_many_rows_shorter_than_the_header_refuse_the_export_naming_them(tmp_path, piece, said):
    """More than 1 % (and more than one ticket cut in two): the quoting is broken, not a cell."""
    path = tmp_path / "short.csv"
    path.write_bytes(_with_broken(_rows(300), at=[10], piece=piece)[0])
    mapping = _mapping(tmp_path)
    for read in (lambda: load_export(path, mapping), lambda: load_sampled(path, mapping, 20, "team")):
        with pytest.raises(InputError, match="fewer fields than the header") as caught:
            read()
        message = str(caught.value)
        assert said in message and "expected 4 fields per row (the header's)" in message
        assert "row 11 (line 12: " in message and "every cell quoted" in message


def test_a_quote_never_closed_is_refused_by_both_readers_not_skipped_as_one_short_row(tmp_path):
    """The rest of the file reads as one cell of one short row: skipping it would lose every
    ticket after it without a word."""
    path = tmp_path / "short.csv"
    path.write_bytes(_csv(_rows(300)).replace(b"T150,Ticket 150 vpn,", b'T150,Ticket 150 vpn,"', 1))
    mapping = _mapping(tmp_path)
    for read in (lambda: load_export(path, mapping), lambda: load_sampled(path, mapping, 20, "team")):
        with pytest.raises(InputError, match="a quoted cell is never closed") as caught:
            read()
        assert "from row 151 (line 152) to the end of the file" in str(caught.value)


# ---------------------------------------------------------------- a first small training
def test_a_head_that_applies_nothing_says_why_in_the_summary_and_the_report(tmp_path, capsys):
    """120 clean rows: accuracy 1.000, and yet "applied 0.0%" with no word of why."""
    words = {t: f"{t} words here" for t in TEAMS}
    rows = [
        [f"T{i}", f"{TEAMS[i % 4]} issue {i}", f"{words[TEAMS[i % 4]]} ref {i * 7}", TEAMS[i % 4]]
        for i in range(120)
    ]
    path = tmp_path / "small.csv"
    path.write_bytes(_csv(rows))
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    args = ["train", "--data", str(path), "--mapping", str(tmp_path / "mapping.yaml"), "--encoder", "none"]
    assert main([*args, "--no-tracking", "--out", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "applies nothing: calibration split has" in out, out
    assert "that is about 520 labelled rows in the export" in out
    page = next((tmp_path / "models").glob("*/report/report.html")).read_text(encoding="utf-8")
    assert "Applies nothing:" in page and "about 520 labelled rows" in page


def test_the_reason_names_the_count_rule_when_the_calibration_split_is_large_enough():
    from training.apply_reason import no_apply_reason

    head = {
        "metrics": {"at_thresholds": {"applied": {"n": 0}}},
        "thresholds": {"a": {"apply": None, "n_predicted": 12}, "b": {"apply": None, "n_predicted": 30}},
    }
    why = no_apply_reason(head, {"target_precision": 0.9})
    assert "no class showed precision 0.90" in why and "at least 20 predictions" in why and "'b', 30" in why
    head["metrics"]["at_thresholds"]["applied"]["n"] = 3
    assert no_apply_reason(head, {}) is None


# ---------------------------------------------------------------- rich-text bodies
def test_html_bodies_are_read_as_the_service_reads_an_html_ticket(tmp_path):
    """Freshdesk's Description, ServiceNow's and Zendesk's rich text. Before: the heads
    trained on "<div dir="ltr"><p>hello&nbsp;team" while live tickets arrive as text."""
    from triage.htmltext import as_text
    from triage.text import model_text

    body = (
        '<div dir="ltr"><p>Hello&nbsp;team,</p><p>the <b>VPN</b> drops &amp; reconnects.</p>'
        '<img src="cid:image001.png@01D"><style>.x{color:red}</style></div>'
    )
    rows = [[f"T{i}", f"VPN issue {i}", body if i % 2 else "plain <3 text", TEAMS[i % 4]] for i in range(40)]
    path = tmp_path / "freshdesk.csv"
    path.write_bytes(_csv(rows))
    whole, sample, _ = _read_both(path, _mapping(tmp_path))
    assert whole.texts[1] == model_text("VPN issue 1", as_text(body)), whole.texts[1]
    assert "the vpn drops & reconnects." in whole.texts[1]
    assert not any(w in t for t in whole.texts + sample.texts for w in ("<div", "nbsp", "color:red"))
    assert whole.texts[0] == "vpn issue 0 plain <3 text"
    (note,) = [w for w in whole.counts["warnings"] if w["kind"] == "html_body"]
    assert note["rows"] == 20 and "were HTML" in note["message"]


# ---------------------------------------------------------------- a file larger than memory
def test_an_export_too_large_for_memory_is_refused_at_once_naming_max_rows(tmp_path, capsys, monkeypatch):
    """Before: read whole into pandas, an OOM kill minutes later with no message."""
    import training.memory_check as memory_check

    path = tmp_path / "big.csv"
    path.write_bytes(_csv(_rows(400)))
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    monkeypatch.setattr(memory_check, "available_memory", lambda: path.stat().st_size * 4)  # 40 % of the need
    args = ["train", "--data", str(path), "--mapping", str(tmp_path / "mapping.yaml"), "--encoder", "none"]
    assert main([*args, "--no-tracking", "--out", str(tmp_path / "models")]) == 2
    err = capsys.readouterr().err
    assert "reading it whole needs about" in err and "pass --max-rows 1000 to read it as a stream" in err, err
    assert not (tmp_path / "models").exists()


def test_the_memory_check_lets_an_export_that_fits_through(tmp_path):
    from training.memory_check import available_memory, check_fits

    path = tmp_path / "small.csv"
    path.write_bytes(_csv(_rows()))
    assert (available_memory() or 0) > 0  # /proc/meminfo is read on Linux
    check_fits(path)


# ---------------------------------------------------------------- nested JSON values
def _zendesk(tmp_path: Path, mapping: str) -> tuple[Path, object]:
    records = [
        {
            "id": i,
            "subject": f"vpn {i}",
            "description": f"body {i}",
            "tags": [TEAMS[i % 4], "vip"],
            "one_tag": [TEAMS[i % 4]],
            "group": {"name": TEAMS[i % 4]},
            "comments": [{"body": "first"}, {"body": "second"}],
            "lines": ["first line", "second line"],
        }
        for i in range(40)
    ]
    path = tmp_path / "zendesk.json"
    path.write_text(json.dumps({"tickets": records, "count": 40}), encoding="utf-8")
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    return path, load_mapping(tmp_path / "mapping.yaml")


@pytest.mark.parametrize(
    "mapping, said",
    [
        # Zendesk's tags: before, "['network', 'vip']" was a class of its own
        (
            "text: {subject: subject, body: description}\nlabels: {team: {column: tags}}\n",
            "one value per row",
        ),
        # a comment thread: before, the heads read "[{'body': 'first'}, ...]"
        ("text: {subject: subject, body: comments}\nlabels: {team: {column: group.name}}\n", "holds objects"),
    ],
)
def test_a_list_in_a_mapped_json_column_is_refused_not_read_as_its_repr(tmp_path, mapping, said):
    path, m = _zendesk(tmp_path, mapping)
    for read in (lambda: load_export(path, m), lambda: load_sampled(path, m, 20, "team")):
        with pytest.raises(InputError, match=said) as caught:
            read()
        assert "row 1" in str(caught.value)


def test_a_one_element_list_is_its_value_and_a_list_of_texts_is_joined(tmp_path):
    path, m = _zendesk(tmp_path, "text: {subject: subject, body: lines}\nlabels: {team: {column: one_tag}}\n")
    whole, sample, _ = _read_both(path, m)
    assert whole.labels["team"][:4] == TEAMS and set(sample.labels["team"]) == set(TEAMS)
    assert whole.texts[0] == "vpn 0 first line  second line"


def test_the_encoding_of_an_export_is_decided_once_per_file(tmp_path, monkeypatch):
    """Each answer reads the whole file; a sampled read asked six times (a 63 MB
    Windows-1252 export: 7.0 s of CPU for the read, 2.3 s with one answer)."""
    import training.csv_dialect as csv_dialect

    asked = []
    real = csv_dialect._file_encoding
    monkeypatch.setattr(csv_dialect, "_file_encoding", lambda path: asked.append(path) or real(path))
    path = tmp_path / "legacy.csv"
    path.write_bytes(_csv(_rows()).decode("utf-8").replace("“ok” €5", "naïve").encode("cp1252"))
    mapping = _mapping(tmp_path)
    load_sampled(path, mapping, 20, "team")
    load_export(path, mapping)
    assert len(asked) == 1
    path.write_bytes(_csv(_rows(41)))  # another file at that path: asked again
    assert len(load_export(path, mapping)) == 41 and len(asked) == 2
