"""``triage mapping``: a mapping drafted from exports shaped as help-desk tools write them.

Each export is made here (tools' column names, languages, label shapes), never copied
from anywhere: the draft must pick the text and the label columns, quote names YAML
would break on, leave out what only looks like a label, and be a mapping ``triage train``
accepts as it stands.
"""

from __future__ import annotations

import csv
import html
import io
import json
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.mapping import parse_mapping
from training.mapping_draft import draft_mapping
from triage.errors import InputError
from triage_cli import main

TEAMS = {
    "Network": ("vpn tunnel drops", "wifi signal lost", "network cable port dead"),
    "Access": ("password expired reset", "account locked out", "permission denied on share"),
    "Hardware": ("laptop screen black", "printer jams paper", "docking station no power"),
    "HR": ("payslip missing this month", "holiday balance wrong", "pension form question"),
}
WORDS = {"fr": "merci de votre aide, cordialement", "de": "vielen Dank für die Hilfe, Grüße", "en": "thanks"}


def _tickets(n: int = 240, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        team = list(TEAMS)[i % len(TEAMS)]
        issue = rng.choice(TEAMS[team])
        out.append(
            {
                "i": i,
                "team": team,
                "subject": f"{issue} since monday",
                "body": f"Hello, {issue} again on floor {rng.randint(1, 9)} (ref {i}). {rng.choice(list(WORDS.values()))}",
                "type": "incident" if i % 3 else "request",
                "prio": ["1 - High", "2 - Medium", "3 - Low"][i % 3],
                "date": f"2024-03-{1 + i % 28:02d} 10:{i % 60:02d}:00",
            }
        )
    return out


def _write_csv(
    path: Path, header: list[str], rows: list[list], delimiter: str = ",", encoding="utf-8"
) -> Path:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows([header, *rows])
    path.write_text(out.getvalue(), encoding=encoding)
    return path


def servicenow(tmp: Path) -> Path:
    header = [
        "number",
        "short_description",
        "description",
        "assignment_group",
        "priority",
        "state",
        "opened_at",
        "caller_id",
    ]
    rows = [
        [f"INC{t['i']:07d}", t["subject"], t["body"], t["team"], t["prio"], "Closed", t["date"], "a@x.org"]
        for t in _tickets()
    ]
    return _write_csv(tmp / "incident.csv", header, rows)


def jira(tmp: Path) -> Path:
    header = [
        "Summary",
        "Issue key",
        "Issue Type",
        "Status",
        "Created",
        "Description",
        "Labels",
        "Labels",
        "Component/s",
    ]
    rows = [
        [
            t["subject"],
            f"HD-{t['i']}",
            t["type"].title(),
            "Done",
            f"04/Mar/24 {1 + t['i'] % 12}:15 AM",
            t["body"],
            "x",
            "",
            t["team"],
        ]
        for t in _tickets()
    ]
    return _write_csv(tmp / "jira.csv", header, rows)


def freshdesk(tmp: Path) -> Path:
    header = [
        "Ticket ID",
        "Subject",
        "Description",
        "Status",
        "Priority",
        "Source",
        "Type",
        "Group",
        "Created time",
    ]
    rows = [
        [
            t["i"],
            t["subject"],
            f"<div><p>{html.escape(t['body'])}</p></div>",
            "Closed",
            "Low",
            "Email",
            t["type"],
            t["team"],
            t["date"],
        ]
        for t in _tickets()
    ]
    return _write_csv(tmp / "freshdesk.csv", header, rows)


def zendesk(tmp: Path) -> Path:
    records = [
        {"id": t["i"], "subject": t["subject"], "description": t["body"], "type": t["type"],
         "group_id": 36000 + list(TEAMS).index(t["team"]), "tags": ["a", "b"], "via": {"channel": "email"},
         "created_at": "2024-03-04T10:15:00Z"}
        for t in _tickets()
    ]  # fmt: skip
    path = tmp / "tickets.json"
    path.write_text(json.dumps({"tickets": records, "count": len(records)}), encoding="utf-8")
    return path


def osticket(tmp: Path) -> Path:  # its CSV export has no description at all
    header = [
        "Ticket Number",
        "Date Created",
        "Subject",
        "From Email",
        "Priority",
        "Department",
        "Help Topic",
    ]
    rows = [
        [
            100 + t["i"],
            "3/4/24 10:15 AM",
            t["subject"],
            "a@x.org",
            "Normal",
            t["team"],
            "Support / " + t["type"],
        ]
        for t in _tickets()
    ]
    return _write_csv(tmp / "osticket.csv", header, rows)


def glpi(tmp: Path) -> Path:  # French, semicolons, Windows-1252
    header = [
        "ID",
        "Titre",
        "Statut",
        "Date d'ouverture",
        "Priorité",
        "Attribué à - Groupe",
        "Catégorie",
        "Description",
    ]
    rows = [
        [
            t["i"],
            t["subject"],
            "Clos",
            f"{1 + t['i'] % 28:02d}-03-2024 10:15",
            "Moyenne",
            t["team"],
            t["type"],
            t["body"] + " " + WORDS["fr"],
        ]
        for t in _tickets()
    ]
    return _write_csv(tmp / "glpi.csv", header, rows, delimiter=";", encoding="cp1252")


def otrs(tmp: Path) -> Path:  # German, queues with '::'
    header = ["TicketNumber", "Title", "Created", "Queue", "State", "Priority", "Type", "CustomerID", "Body"]
    rows = [
        [
            f"2024{t['i']:06d}",
            t["subject"],
            t["date"],
            f"Raw::{t['team']}",
            "closed",
            "3 normal",
            "Unclassified",
            "acme",
            t["body"] + WORDS["de"],
        ]
        for t in _tickets()
    ]
    return _write_csv(tmp / "otrs.csv", header, rows, delimiter=";")


# tool: (export, expected subject, body, {head: column}, metadata that must be there)
SHAPES = {
    "servicenow": (servicenow, "short_description", "description", {"team": "assignment_group", "priority": "priority"}, {"id": "number", "created_at": "opened_at"}),
    "jira": (jira, "Summary", "Description", {"team": "Component/s", "type": "Issue Type"}, {"id": "Issue key", "created_at": "Created"}),
    "freshdesk": (freshdesk, "Subject", "Description", {"team": "Group", "type": "Type"}, {"channel": "Source"}),
    "zendesk": (zendesk, "subject", "description", {"team": "group_id", "type": "type"}, {"channel": "via.channel"}),
    "osticket": (osticket, None, "Subject", {"team": "Department", "category": "Help Topic"}, {"created_at": "Date Created"}),
    "glpi": (glpi, "Titre", "Description", {"team": "Attribué à - Groupe", "category": "Catégorie"}, {"created_at": "Date d'ouverture"}),
    "otrs": (otrs, "Title", "Body", {"team": "Queue"}, {"created_at": "Created"}),
}  # fmt: skip


@pytest.mark.parametrize("tool", sorted(SHAPES))
def test_the_draft_maps_each_tool_s_text_and_label_columns(tmp_path, tool):
    make, subject, body, labels, metadata = SHAPES[tool]
    text = draft_mapping(make(tmp_path))
    raw = yaml.safe_load(text)
    mapping = parse_mapping(raw)
    assert (mapping.subject, mapping.body) == (subject, body)
    assert {h: s.column for h, s in mapping.labels.items()} == labels, text
    assert metadata.items() <= mapping.metadata.items(), text
    assert list(mapping.labels)[0] == "team"  # the first head stratifies --max-rows samples


def test_a_column_named_like_a_label_holding_one_value_is_left_out_saying_why(tmp_path):
    text = draft_mapping(otrs(tmp_path))
    assert "'Priority' is named like priority but holds one value only ('3 normal')" in text
    assert "'Type' is named like type but holds one value only ('Unclassified')" in text
    assert "Status" not in yaml.safe_load(text)["labels"]


def test_numeric_codes_and_placeholders_are_pointed_out(tmp_path):
    rows = [
        [t["subject"], t["body"], 36000 + list(TEAMS).index(t["team"]) if t["i"] % 10 else "N/A"]
        for t in _tickets()
    ]
    text = draft_mapping(_write_csv(tmp_path / "t.csv", ["title", "description", "group"], rows))
    assert parse_mapping(yaml.safe_load(text)).labels["team"].rename == {"N/A": None}
    assert "codes: name them with rename" in text


def test_a_head_fixed_by_another_on_most_rows_gets_a_filter_suggested(tmp_path):
    """As in the shared Endava export: every request has urgency 'low', so an urgency head over
    all rows mostly learns the type. The draft suggests training it on incidents only; a
    priority that merely repeats the urgency column is not taken for such a head."""
    tickets = [{**t, "type": "request" if t["i"] % 3 else "incident"} for t in _tickets(300)]
    urgency = [
        "low" if t["type"] == "request" else ["high", "medium", "low"][t["i"] // 3 % 3] for t in tickets
    ]
    rows = [[t["subject"], t["body"], t["type"], u, u.upper(), t["team"]] for t, u in zip(tickets, urgency)]
    header = ["title", "description", "type", "urgency", "priority", "team"]
    text = draft_mapping(_write_csv(tmp_path / "t.csv", header, rows))
    line = next(x for x in text.splitlines() if x.startswith("#   urgency: {where"))
    assert "urgency is 'low' on all 200 rows where type is 'request'" in line
    assert "where urgency is" not in text and "where priority is" not in text  # derived, not fixed
    raw = yaml.safe_load(text + "filters:\n" + line[1:].split("#")[0] + "\n")
    assert parse_mapping(raw).labels["urgency"].where == {"type": ["incident"]}


def test_a_label_named_in_words_wins_over_its_codes(tmp_path):
    """Zendesk's incremental export nests the group as {id, name}: both read as team-like
    columns (group.id, group.name); the draft maps the names and lists the codes."""
    path = tmp_path / "tickets.jsonl"
    lines = [
        json.dumps(
            {"id": t["i"], "subject": t["subject"], "description": t["body"],
             "group": {"id": 360000 + list(TEAMS).index(t["team"]), "name": t["team"]}}
        )
        for t in _tickets()
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = draft_mapping(path)
    assert parse_mapping(yaml.safe_load(text)).labels["team"].column == "group.name"
    assert '#   group_id: "group.id"' in text


def test_a_sorted_export_is_drafted_from_rows_drawn_over_the_whole_file(tmp_path):
    """Sorted by type, the first rows show one type only: a draft from them left it out."""
    tickets = sorted(_tickets(6000), key=lambda t: t["type"])
    rows = [[t["subject"], t["body"], t["type"], t["team"]] for t in tickets]
    text = draft_mapping(_write_csv(tmp_path / "sorted.csv", ["title", "description", "type", "team"], rows))
    assert parse_mapping(yaml.safe_load(text)).labels["type"].column == "type"
    assert "5000 rows drawn evenly from its 6000" in text


def test_a_draft_without_named_columns_goes_by_the_values(tmp_path):
    rows = [[t["i"], t["body"], t["team"], t["date"]] for t in _tickets()]
    text = draft_mapping(_write_csv(tmp_path / "t.csv", ["c1", "c2", "c3", "c4"], rows))
    mapping = parse_mapping(yaml.safe_load(text))
    assert mapping.body == "c2" and [s.column for s in mapping.labels.values()] == ["c3"]
    assert "is a guess" in text and "holds the longest texts" in text


@pytest.mark.parametrize(
    "header, rows, said",
    [
        (
            ["id", "team"],
            [[i, "a" if i % 2 else "b"] for i in range(50)],
            "no column looks like the tickets' text",
        ),
        (
            ["id", "text"],
            [[i, f"words {i} here and more words"] for i in range(50)],
            "no column looks like a label",
        ),
    ],
)
def test_an_export_with_no_text_or_no_label_is_refused_listing_its_columns(tmp_path, header, rows, said):
    with pytest.raises(InputError, match=said) as caught:
        draft_mapping(_write_csv(tmp_path / "t.csv", header, rows))
    assert "'id': " in str(caught.value)


def test_a_newcomer_goes_from_export_to_bundle_with_the_draft(tmp_path, capsys):
    """Before: `triage train --data X` said only "the following arguments are required:
    --mapping", and the mapping had to be written by hand from the README."""
    data = glpi(tmp_path)
    assert main(["train", "--data", str(data)]) == 2
    assert f"triage mapping --data {data} --out mapping.yaml" in capsys.readouterr().err
    out = tmp_path / "mapping.yaml"
    assert main(["mapping", "--data", str(data), "--out", str(out)]) == 0
    assert main(["mapping", "--data", str(data), "--out", str(out)]) == 2  # no silent overwrite
    assert "exists; pass --force" in capsys.readouterr().err
    argv = ["train", "--data", str(data), "--mapping", str(out), "--out", str(tmp_path / "models")]
    assert main([*argv, "--encoder", "none", "--no-tracking"]) == 0, capsys.readouterr().err
    assert len(list((tmp_path / "models").iterdir())) == 1


@pytest.mark.parametrize(
    "command", [["evaluate", "--bundle", "b"], ["label-quality"], ["embed", "--out", "o"]]
)
def test_every_command_that_needs_a_mapping_says_how_to_draft_one(tmp_path, capsys, command):
    with pytest.raises(SystemExit) as code:
        main([*command, "--data", str(tmp_path / "x.csv")])
    assert code.value.code == 2
    assert "`triage mapping --data EXPORT` drafts one" in capsys.readouterr().err


_NAME = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=0, max_size=12)
_CELL = st.one_of(
    st.sampled_from(["Network", "Access", "N/A", "", "1", "2024-03-04", "a@b.org"]), st.text(max_size=40)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(_NAME, min_size=1, max_size=6),
    cells=st.lists(st.lists(_CELL, min_size=6, max_size=6), min_size=1, max_size=40),
)
def test_any_csv_is_drafted_as_a_mapping_train_accepts_or_refused_with_an_input_error(tmp_path, names, cells):
    """Odd headers (empty, repeated, quotes, line breaks, any script) and odd cells: a draft
    parses back as a mapping, or an InputError says why; never a traceback."""
    path = tmp_path / "any.csv"
    _write_csv(path, names, [row[: len(names)] for row in cells])
    try:
        text = draft_mapping(path)
    except InputError:
        return
    parse_mapping(yaml.safe_load(text))
