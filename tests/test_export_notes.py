"""Exports that train without an error yet could mislead: the report says how they were read.

Synthetic exports in the shapes other tools write (Jira's repeated ``Labels`` columns,
osTicket's and Excel's ``03/04/2024`` dates, German ``03.04.2024``, Freshdesk/Zendesk JSON
with Unix times or nested objects, ServiceNow's zoned and unzoned times in one column).
Both readers: the in-memory one (``load_export``) and the streamed one (``--max-rows``).
The notes reach ``report["data"]["warnings"]`` (machine-readable), the text ``triage train``
prints and ``report.html``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.dates import parse_times
from training.mapping import load_export, load_mapping
from training.stream import load_sampled
from triage.errors import ConfigError, InputError
from triage_cli import main

TEAMS = {
    "Network": ["vpn keeps dropping", "wifi very slow", "cannot reach the file share"],
    "Accounts": ["password reset needed", "locked out of my account", "lost my mfa token"],
    "Hardware": ["laptop screen cracked", "printer jammed again", "docking station dead"],
}


def _csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _mapping(path: Path, extra: str = "", created: str = "Created", team: str = "Team") -> Path:
    path.write_text(
        f'text: {{subject: Summary, body: Description}}\nmetadata: {{created_at: "{created}"}}\n'
        f'labels: {{team: {{column: "{team}"}}}}\n{extra}',
        encoding="utf-8",
    )
    return path


def _export(tmp_path: Path, dates: list[str], *, name: str = "export", extra: dict | None = None) -> Path:
    """Summary, Description, Team, Created and the ``extra`` columns (name: value in every row)."""
    rows = []
    for i, when in enumerate(dates):
        team = list(TEAMS)[i % 3]
        words = TEAMS[team][(i // 3) % 3]
        rows.append([f"{words} ({i})", f"{words} since today", team, when, *(extra or {}).values()])
    header = ["Summary", "Description", "Team", "Created", *(extra or {})]
    return _csv(tmp_path / f"{name}.csv", header, rows)


def _both(data: Path, mapping: Path):
    """The dataset as the in-memory and the streamed (``--max-rows``) readers give it."""
    m = load_mapping(mapping)
    return load_export(data, m), load_sampled(data, m, 10_000, "team")[0]


def _notes(ds, kind: str) -> list[dict]:
    return [n for n in ds.counts["warnings"] if n["kind"] == kind]


# ---------------------------------------------------------------------------- dates
def test_a_column_with_a_day_above_12_is_read_day_first_everywhere(tmp_path):
    # before: 03/04/2024 was read as 4 March, 25/12/2023 as 25 December, in the same column
    data = _export(tmp_path, ["03/04/2024 10:15", "25/12/2023 09:00", "01/02/2024"])
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        assert ds.metadata["created_at"][0] == datetime(2024, 4, 3, 10, 15, tzinfo=timezone.utc)
        assert ds.metadata["created_at"][2] == datetime(2024, 2, 1, tzinfo=timezone.utc)
        (note,) = _notes(ds, "date_order")
        assert note["chosen"] == "day_first" and "row 2 '25/12/2023 09:00'" in note["message"]


def test_a_column_with_a_second_part_above_12_is_read_month_first(tmp_path):
    data = _export(tmp_path, ["3/4/24 10:15 AM", "12/25/23 9:00 PM", "1/2/24"])
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        assert ds.metadata["created_at"][0] == datetime(2024, 3, 4, 10, 15, tzinfo=timezone.utc)
        assert ds.metadata["created_at"][1] == datetime(2023, 12, 25, 21, 0, tzinfo=timezone.utc)
        assert _notes(ds, "date_order")[0]["chosen"] == "month_first"


def test_dates_that_read_both_ways_are_read_month_first_with_a_warning_saying_why(tmp_path):
    data = _export(tmp_path, ["03/04/2024", "05/06/2024", "2024-07-08T10:00:00Z"])
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        assert ds.metadata["created_at"][0] == datetime(2024, 3, 4, tzinfo=timezone.utc)
        (note,) = _notes(ds, "ambiguous_dates")
        assert note["chosen"] == "month_first" and note["ambiguous_values"] == 2
        assert "date_order: day_first" in note["message"] and "'03/04/2024'" in note["message"]


def test_dotted_dates_are_read_day_first_and_the_report_says_so(tmp_path):
    data = _export(tmp_path, ["03.04.2024 10:15", "05.06.2024", "07.08.2024"])
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        assert ds.metadata["created_at"][0] == datetime(2024, 4, 3, 10, 15, tzinfo=timezone.utc)
        (note,) = _notes(ds, "ambiguous_dates")
        assert note["chosen"] == "day_first" and "dotted" in note["because"]


def test_the_mapping_can_say_the_order_and_then_a_contradicting_date_is_named(tmp_path):
    data = _export(tmp_path, ["03/04/2024", "05/06/2024", "07/08/2024"])
    mapping = _mapping(tmp_path / "m.yaml", "date_order: day_first\n")
    for ds in _both(data, mapping):
        assert ds.metadata["created_at"][0] == datetime(2024, 4, 3, tzinfo=timezone.utc)
        assert ds.counts["warnings"] == []
    data = _export(tmp_path, ["03/04/2024", "12/25/2023", "07/08/2024"], name="us")
    with pytest.raises(InputError) as err:
        load_export(data, load_mapping(mapping))
    assert err.value.details["row"] == 2 and err.value.details["got"] == repr("12/25/2023")
    bad = _mapping(tmp_path / "bad.yaml", "date_order: european\n")
    with pytest.raises(ConfigError, match="date_order: expected one of"):
        load_mapping(bad)


def test_a_column_mixing_both_orders_is_refused_naming_one_row_of_each(tmp_path):
    data = _export(tmp_path, ["25/12/2023", "03/04/2024", "12/31/2023"])
    for read in (load_export, lambda d, m: load_sampled(d, m, 10_000, "team")):
        with pytest.raises(InputError) as err:
            read(data, load_mapping(_mapping(tmp_path / "m.yaml")))
        assert err.value.details["column"] == "Created"
        assert "row 1 '25/12/2023'" in err.value.details["got"]
        assert "row 3 '12/31/2023'" in err.value.details["got"]


def test_times_with_and_without_a_zone_in_one_column_train(tmp_path):
    # before: aware and naive datetimes in one column; sorting them for the requester
    # history raised "can't compare offset-naive and offset-aware datetimes"
    zoned = ["2024-03-04 10:15:00", "2024-03-04T09:15:00+01:00", "2024-03-05T10:00:00Z"]
    data = _export(tmp_path, zoned * 20, extra={"Requester": "ann@example.org"})
    mapping = _mapping(tmp_path / "m.yaml")
    mapping.write_text(
        mapping.read_text().replace(
            '{created_at: "Created"}', '{created_at: "Created", requester: Requester}'
        )
    )
    ds = load_export(data, load_mapping(mapping))
    assert ds.metadata["created_at"][1] == datetime(2024, 3, 4, 8, 15, tzinfo=timezone.utc)
    from triage.features import requester_history

    requester_history(ds.metadata["requester"], ds.metadata["created_at"], ds.labels)


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_unix_times_in_json_are_read_as_seconds_or_milliseconds_not_nanoseconds(tmp_path):
    # before: 1709547300 (Freshdesk-style JSON) became 1970-01-01 00:00:01.7 in silence
    records = [
        {
            "Summary": "vpn down",
            "Description": "vpn keeps dropping",
            "Team": "Network",
            "Created": 1709547300,
        },
        {"Summary": "reset", "Description": "password reset", "Team": "Accounts", "Created": 1709547300123},
        {"Summary": "screen", "Description": "screen cracked", "Team": "Hardware", "Created": "1709547300"},
    ]
    data = _jsonl(tmp_path / "export.jsonl", records)
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        when = datetime(2024, 3, 4, 10, 15, tzinfo=timezone.utc)
        assert ds.metadata["created_at"][0] == when and ds.metadata["created_at"][2] == when
        assert ds.metadata["created_at"][1] == datetime(2024, 3, 4, 10, 15, 0, 123000, tzinfo=timezone.utc)


def test_an_excel_serial_day_in_json_is_refused_not_read_as_1970(tmp_path):
    records = [{"Summary": "vpn", "Description": "vpn down", "Team": "Network", "Created": 45352.41666}]
    data = _jsonl(tmp_path / "export.jsonl", records)
    with pytest.raises(InputError) as err:
        load_export(data, load_mapping(_mapping(tmp_path / "m.yaml")))
    assert err.value.details["row"] == 1 and "Unix time" in err.value.details["expected"]


# ---------------------------------------------------------------------------- columns, classes
def test_repeated_column_names_are_warned_about_naming_the_one_read(tmp_path):
    # Jira's CSV export: one "Labels" / "Component/s" column per value, all the same name
    header = ["Summary", "Description", "Team", "Labels", "Labels", "Created", "Labels"]
    rows = [
        [f"{w} ({i})", w, t, "vpn", "urgent", "2024-03-04", ""]
        for i, (t, ws) in enumerate(TEAMS.items())
        for w in ws
    ]
    data = _csv(tmp_path / "jira.csv", header, rows)
    for team_col in ("Team", "Labels"):
        mapping = _mapping(tmp_path / f"{team_col}.yaml", team=team_col)
        for ds in _both(data, mapping):
            (note,) = _notes(ds, "duplicate_columns")
            assert note["column"] == "Labels" and note["positions"] == [4, 5, 7]
            if team_col == "Labels":  # the first of them, on both readers
                assert "labels.team reads only the first (column 4)" in note["message"]
                assert set(ds.labels["team"]) == {"vpn"}
            else:
                assert "reads none of them" in note["message"]


def test_classes_that_differ_only_in_case_or_spacing_are_warned_about(tmp_path):
    rows = [
        [f"vpn down {i}", "vpn keeps dropping", team, "2024-03-04"]
        for i, team in enumerate(
            ["Network"] * 5 + ["network"] * 2 + ["Service  Desk"] * 2 + ["service desk"] + ["Accounts"] * 3
        )
    ]
    data = _csv(tmp_path / "export.csv", ["Summary", "Description", "Team", "Created"], rows)
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        notes = _notes(ds, "near_duplicate_classes")
        assert sorted(tuple(n["classes"]) for n in notes) == [
            ("Network", "network"),
            ("Service  Desk", "service desk"),
        ]
        assert "'Network' (5 rows) / 'network' (2 rows)" in notes[0]["message"]


def test_a_label_cell_holding_several_classes_is_warned_about(tmp_path):
    """ServiceNow list fields and typed-in "Network; VPN" cells: each combination was a class
    of its own, without a word. A class that merely holds a comma is left alone."""
    teams = ["Network"] * 6 + ["Accounts"] * 4 + ["Network, Accounts"] * 3 + ["VPN; Network"] * 2
    teams += ["Sales, Marketing & PR"] * 3  # one class with a comma in its name
    rows = [[f"vpn down {i}", "vpn keeps dropping", team, "2024-03-04"] for i, team in enumerate(teams)]
    data = _csv(tmp_path / "export.csv", ["Summary", "Description", "Team", "Created"], rows)
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        (note,) = _notes(ds, "multi_value_label")
        assert note["rows"] == 5 and note["head"] == "team"
        assert "'Network, Accounts' (3 rows), 'VPN; Network' (2 rows)" in note["message"]
        assert "Sales" not in note["message"]


def test_an_id_on_several_rows_is_warned_about_with_the_ones_whose_labels_disagree(tmp_path):
    """An export of updates (one row per reassignment or comment) trained each row as a ticket."""
    ids = ["INC1", "INC1", "INC1", "INC2", "INC2", "INC3", "INC4", "INC5", "INC6"]
    teams = [
        "Network",
        "Network",
        "Accounts",
        "Hardware",
        "Hardware",
        "Network",
        "Accounts",
        "Hardware",
        "Network",
    ]
    rows = [
        [f"vpn down {i}", "vpn keeps dropping", t, "2024-03-04", n]
        for i, (n, t) in enumerate(zip(ids, teams))
    ]
    data = _csv(tmp_path / "export.csv", ["Summary", "Description", "Team", "Created", "Number"], rows)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "text: {subject: Summary, body: Description}\nmetadata: {id: Number}\nlabels: {team: Team}\n",
        encoding="utf-8",
    )
    for ds in _both(data, mapping):
        (note,) = _notes(ds, "repeated_id")
        assert (note["ids"], note["rows"], note["column"]) == (2, 5, "Number")
        assert "'INC1' ×3, 'INC2' ×2; 5 rows), 1 of them with labels that disagree" in note["message"]


def test_triage_train_prints_the_warnings_and_keeps_them_in_report_json(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dates = [f"{d:02d}/{m:02d}/2024" for d in range(1, 13) for m in range(1, 6)]
    data = _export(tmp_path, dates, extra={"Team": "x"})
    out = tmp_path / "models"
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--mapping",
            str(_mapping(tmp_path / "m.yaml")),
            "--encoder",
            "none",
            "--no-tracking",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "warnings about the export:" in printed
    assert "60 date(s), such as row 1 '01/01/2024', read either day-first or month-first" in printed
    assert "the header names 2 columns 'Team'" in printed
    (report,) = out.glob("*/report/report.json")
    kinds = [n["kind"] for n in json.loads(report.read_text())["data"]["warnings"]]
    assert kinds == ["duplicate_columns", "ambiguous_dates"]
    assert "Warnings about the export" in (report.parent / "report.html").read_text(encoding="utf-8")


def test_nanoseconds_are_cut_without_a_warning_and_zone_abbreviations_are_explained(tmp_path):
    # before: pandas' "Discarding nonzero nanoseconds" warning once per row (an error under pytest)
    data = _export(tmp_path, ["2024-03-04T10:15:00.123456789Z"] * 3)
    ds = load_export(data, load_mapping(_mapping(tmp_path / "m.yaml")))
    assert ds.metadata["created_at"][0] == datetime(2024, 3, 4, 10, 15, 0, 123456, tzinfo=timezone.utc)
    data = _export(tmp_path, ["2024-03-04 10:15:00 UTC", "2024-03-04 10:15:00 CET"], name="zones")
    with pytest.raises(InputError, match=r"abbreviation such as 'CET' names no single offset") as err:
        load_export(data, load_mapping(_mapping(tmp_path / "m.yaml")))
    assert err.value.details["row"] == 2


_DATEISH = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}( \d{1,2}:\d{2}( [AP]M)?)?\Z"),
    st.from_regex(
        r"\A\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}| [A-Z]{3})?)?\Z"
    ),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_DATEISH, min_size=1, max_size=8), st.sampled_from([None, "day_first", "month_first"]))
def test_any_time_column_reads_as_utc_times_or_stops_with_an_input_error(values, order):
    try:
        times, note = parse_times(values, list(range(1, len(values) + 1)), "f.csv", "Created", order)
    except InputError as exc:
        assert exc.details["file"] == "f.csv" and exc.details["column"] == "Created"
        return
    assert all(t.tzinfo is timezone.utc for t in times) and (note is None or note["message"])


def test_a_placeholder_label_is_warned_about_and_rename_to_null_makes_it_missing(tmp_path):
    # before: "N/A" (ServiceNow "(empty)", Jira "Unassigned") trained as a team of its own, no word
    teams = ["Network", "N/A", "Accounts", "N/A", "Hardware", "Network"]
    rows = [[f"vpn down {i}", "vpn keeps dropping", t, "2024-03-04"] for i, t in enumerate(teams)]
    data = _csv(tmp_path / "export.csv", ["Summary", "Description", "Team", "Created"], rows)
    for ds in _both(data, _mapping(tmp_path / "m.yaml")):
        (note,) = _notes(ds, "placeholder_class")
        assert note["classes"] == ["N/A"] and "'N/A': null under labels.team.rename" in note["message"]
    mapping = _mapping(tmp_path / "null.yaml")
    mapping.write_text(
        mapping.read_text().replace('{column: "Team"}', '{column: "Team", rename: {"N/A": null}}')
    )
    for ds in _both(data, mapping):
        assert ds.labels["team"] == ["Network", None, "Accounts", None, "Hardware", "Network"]
        assert ds.counts["missing_label"]["team"] == 2 and _notes(ds, "placeholder_class") == []
