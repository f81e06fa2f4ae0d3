"""Mapping files and export loading: every format, every error names file, row and column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from triage.errors import ConfigError, InputError
from training.mapping import load_export, load_mapping, parse_mapping

ROWS = [
    {
        "title": "VPN down",
        "description": "Cannot connect to VPN since this morning",
        "kind": "0",
        "grp": "network",
        "opened": "2024-03-01T09:00:00Z",
        "imp": "1",
    },
    {
        "title": "New laptop",
        "description": "Please order a laptop for the new hire",
        "kind": "1",
        "grp": "purchase",
        "opened": "2024-03-02",
        "imp": "",
    },
    {
        "title": "",
        "description": "Printer on floor 2 jams",
        "kind": "",
        "grp": "hardware",
        "opened": "",
        "imp": "3",
    },
]
MAPPING = """
text: {subject: title, body: description}
metadata: {created_at: opened}
labels:
  type: {column: kind, rename: {0: incident, 1: service_request}}
  team: {column: grp}
  impact: {column: imp, rename: {1: high, 2: medium, 3: low}}
filters:
  impact: {where: {type: incident}}
"""


def _write(tmp_path: Path, rows=ROWS, mapping=MAPPING, name="export.csv") -> tuple[Path, Path]:
    data = tmp_path / name
    df = pd.DataFrame(rows)
    if name.endswith(".csv"):
        df.to_csv(data, index=False)
    elif name.endswith(".jsonl"):
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        df.to_parquet(data)
    m = tmp_path / "mapping.yaml"
    m.write_text(mapping)
    return data, m


@pytest.mark.parametrize("name", ["export.csv", "export.jsonl", "export.parquet"])
def test_every_format_loads_the_same(tmp_path, name):
    data, m = _write(tmp_path, name=name)
    ds = load_export(data, load_mapping(m))
    assert ds.texts[0] == "vpn down cannot connect to vpn since this morning"
    assert ds.labels["type"] == ["incident", "service_request", None]  # missing label kept
    assert ds.labels["team"] == ["network", "purchase", "hardware"]
    # impact only where type is incident: the printer row (no type) and the request lose it
    assert ds.labels["impact"] == ["high", None, None]
    assert ds.counts["filtered_out"]["impact"] == 1
    assert ds.counts["missing_label"]["type"] == 1
    assert ds.metadata["created_at"][0].year == 2024 and ds.metadata["created_at"][2] is None
    assert ds.counts["rows_read"] == ds.counts["rows_kept"] == 3
    assert len(ds.sha256) == 64


def test_unknown_column_names_file_and_column(tmp_path):
    data, m = _write(tmp_path, mapping=MAPPING.replace("column: grp", "column: assignment_group"))
    with pytest.raises(InputError) as err:
        load_export(data, load_mapping(m))
    text = str(err.value)
    assert "export.csv" in text and "assignment_group" in text and "labels.team" in text
    assert "expected one of 'title', 'description'" in text


def test_a_column_named_in_another_case_or_with_spaces_is_pointed_at(tmp_path):
    # a hand-edited header "Title " or "TITLE": the list of names alone hides the difference
    data, m = _write(tmp_path)
    data.write_text(data.read_text(encoding="utf-8").replace("title", "Title ", 1), encoding="utf-8")
    with pytest.raises(InputError, match=r"did you mean 'Title '\? names must match exactly"):
        load_export(data, load_mapping(m))


def test_missing_body_column_is_an_error(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "description"} for r in ROWS]
    data, m = _write(tmp_path, rows=rows)
    with pytest.raises(InputError, match="text.body.*|column description"):
        load_export(data, load_mapping(m))


def test_row_without_text_is_an_error_naming_the_row_unless_dropped(tmp_path):
    rows = ROWS + [{"title": " ", "description": "  ", "kind": "0", "grp": "x", "opened": "", "imp": ""}]
    data, m = _write(tmp_path, rows=rows)
    with pytest.raises(InputError) as err:
        load_export(data, load_mapping(m))
    assert err.value.details["row"] == 4 and err.value.details["column"] == "description"
    m.write_text(MAPPING + "drop_empty_text: true\n")
    ds = load_export(data, load_mapping(m))
    assert ds.counts["dropped"] == {"empty_text": 1} and len(ds) == 3


def test_unparseable_time_names_row_and_column(tmp_path):
    rows = [dict(ROWS[0]), dict(ROWS[1], opened="next tuesday-ish")]
    data, m = _write(tmp_path, rows=rows)
    with pytest.raises(InputError) as err:
        load_export(data, load_mapping(m))
    assert err.value.details == {
        "file": str(data),
        "row": 2,
        "column": "opened",
        "expected": "an ISO 8601 date/time, a day/month/year or month/day/year date, or a Unix time",
        "got": repr("next tuesday-ish"),
    }


def test_unknown_label_code_strict_and_lenient(tmp_path):
    rows = ROWS + [
        {"title": "x", "description": "odd code", "kind": "7", "grp": "x", "opened": "", "imp": ""}
    ]
    data, m = _write(tmp_path, rows=rows, mapping=MAPPING + "strict: true\n")
    with pytest.raises(InputError, match="row 4, column kind.*expected one of 0, 1, got '7'"):
        load_export(data, load_mapping(m))
    m.write_text(MAPPING)
    assert load_export(data, load_mapping(m)).labels["type"][3] == "7"


def test_min_class_count_drops_rare_classes_with_a_count(tmp_path):
    data, m = _write(tmp_path, mapping=MAPPING + "min_class_count: 2\n")
    ds = load_export(data, load_mapping(m))
    assert ds.labels["team"] == [None, None, None]
    assert ds.counts["rare_classes"]["team"] == {
        "classes": {"network": 1, "purchase": 1, "hardware": 1},
        "rows": 3,
    }


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"labels": {"team": "grp"}}, "body required"),
        ({"text": {"body": "b"}, "labels": {"team": "grp"}, "colour": 1}, "unknown keys"),
        ({"text": {"body": "b"}}, "at least one label"),
        ({"text": {"body": "b"}, "labels": {"team": {}}}, "labels.team: expected"),
        (
            {"text": {"body": "b"}, "labels": {"team": "g"}, "filters": {"x": {"where": {"team": 1}}}},
            "filters.x",
        ),
        (
            {"text": {"body": "b"}, "labels": {"team": "g"}, "priority": {"derive_from": ["a", "b"]}},
            "priority.derive_from",
        ),
        ({"text": {"body": "b"}, "labels": {"team": "g"}, "metadata": {"mood": "m"}}, "metadata: unknown"),
    ],
)
def test_bad_mapping_is_a_config_error(raw, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_mapping(raw, source="m.yaml")


def test_priority_column_or_derived_matrix(tmp_path):
    m = parse_mapping(
        {
            "text": {"body": "b"},
            "labels": {"impact": "i", "urgency": "u"},
            "priority": {"derive_from": ["impact", "urgency"]},
        }
    )
    assert m.priority_config()["matrix"]["high"]["high"] == 1
    m = parse_mapping(
        {"text": {"body": "b"}, "labels": {"team": "t"}, "priority": {"column": "prio", "rename": {1: "P1"}}}
    )
    assert m.labels["priority"].column == "prio" and m.priority_config() is None


def test_unsupported_format_and_invalid_yaml(tmp_path):
    bad = tmp_path / "export.xlsx"
    bad.write_text("x")
    _, m = _write(tmp_path)
    with pytest.raises(InputError, match="unsupported export format"):
        load_export(bad, load_mapping(m))
    m.write_text("text: [unclosed\n")
    with pytest.raises(ConfigError, match="mapping.yaml"):
        load_mapping(m)


def test_shared_data_mappings_parse():
    root = Path(__file__).resolve().parents[1] / "bench" / "mappings"
    for path in root.glob("*.yaml"):
        assert load_mapping(path).labels
