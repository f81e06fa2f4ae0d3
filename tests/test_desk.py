"""The desk as data: desk.yaml validated with lines, applied idempotently, checked against rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from triage.desk import check_names, load_desk
from triage.desk.spec import loads_desk
from triage.errors import ConfigError
from triage.rules import RuleSet
from triage.store import desk as store_desk
from triage.store import routing
from triage.store.tables import Agent, DeskChange

ROOT = Path(__file__).resolve().parents[1]
DEMO_DESK = ROOT / "data" / "demo" / "desk.yaml"

SMALL = """\
version: 1
teams:
  Network: {calendar: always, escalation_contacts: [noc@acme.example]}
  Service Desk: {}
agents:
  - {id: nina, name: Nina, email: nina@acme.example, teams: [Network], skills: [vpn],
     capacity: 2, seniority: senior}
  - {id: leo, teams: [Network], seniority: junior}
queues:
  - {name: major-incidents, team: Service Desk}
team_map:
  Networking: Network
"""


def test_demo_desk_matches_the_demo_data_and_the_default_rules():
    desk = load_desk(DEMO_DESK)
    import csv

    with open(ROOT / "data" / "demo" / "tickets.csv", newline="", encoding="utf-8") as fh:
        groups = {r["assignment_group"] for r in csv.DictReader(fh) if r["assignment_group"]}
    assert groups <= set(desk.teams)
    check_names(desk, RuleSet.load(), sorted(groups), "tickets.csv")  # raises on a gap
    assert any(a.seniority == "senior" and "Network" in a.teams for a in desk.agents.values())


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("teams: {A: {}}\nagents:\n  - {id: x, teams: [B]}\n", 3, "unknown team 'B'"),
        ("teams: {A: {}}\nagents:\n  - {id: x, seniority: boss}\n", 3, "seniority"),
        ("teams: {A: {}}\nagents:\n  - {id: x, capacity: -1}\n", 3, "capacity"),
        ("teams: {A: {}}\nagents:\n  - {id: x}\n  - {id: x}\n", 4, "listed twice"),
        ("teams: {A: {colour: red}}\n", 1, "unknown key 'colour'"),
        ("teams: {A: {}}\nteam_map:\n  X: B\n", 3, "unknown team 'B'"),
    ],
)
def test_errors_name_the_line(text, line, words):
    with pytest.raises(ConfigError) as err:
        loads_desk(text, "desk.yaml")
    assert f"desk.yaml:{line}:" in str(err.value) and words in str(err.value)


def test_rules_naming_an_unknown_team_are_refused_with_file_and_line(tmp_path):
    rules = tmp_path / "rules.yaml"
    text = (ROOT / "triage" / "defaults" / "rules.yaml").read_text()
    rules.write_text(text.replace('route_to: "Identity & Access"', "route_to: Access"))
    ruleset = RuleSet.load(rules)
    line = next(r.line for r in ruleset.rules if r.actions.get("route_to") == "Access")
    with pytest.raises(ConfigError) as err:
        check_names(load_desk(DEMO_DESK), ruleset)
    message = str(err.value)
    assert f"{rules}:{line}" in message and "'Access'" in message and "password-reset" in message


def test_bundle_labels_must_exist_or_be_mapped():
    desk = loads_desk(SMALL)
    check_names(desk, None, ["Network", "Networking"])
    with pytest.raises(ConfigError, match="'Storage'"):
        check_names(desk, None, ["Network", "Storage"], "manifest.json")


def test_apply_twice_changes_nothing_the_second_time(store):
    desk = loads_desk(SMALL)
    with store.session() as s:
        first = store_desk.apply(s, desk, actor="ann", source="desk.yaml")
    assert {str(c) for c in first} >= {"+ team Network", "+ agent nina", "+ queue major-incidents"}
    with store.session() as s:
        assert store_desk.apply(s, desk, actor="ann", source="desk.yaml") == []
        recorded = s.scalar(select(func.count()).select_from(DeskChange))
        assert recorded == len(first)
        assert {c.actor for c in s.scalars(select(DeskChange))} == {"ann"}
        nina = s.get(Agent, "nina")
        assert (nina.email, nina.seniority, nina.capacity) == ("nina@acme.example", "senior", 2)
        assert store_desk.current(s)["teams"]["Network"]["escalation_contacts"] == ["noc@acme.example"]


def test_apply_diffs_edits_and_retires_what_left_the_file(store):
    with store.session() as s:
        store_desk.apply(s, loads_desk(SMALL), actor="ann", source="v1")
    edited = SMALL.replace("capacity: 2", "capacity: 5").replace(
        "  - {id: leo, teams: [Network], seniority: junior}\n", ""
    )
    with store.session() as s:
        dry = store_desk.apply(s, loads_desk(edited), actor="bob", source="v2", dry_run=True)
        s.rollback()
    with store.session() as s:
        assert s.get(Agent, "nina").capacity == 2 and s.get(Agent, "leo").active  # dry: untouched
        changes = store_desk.apply(s, loads_desk(edited), actor="bob", source="v2")
    assert [str(c) for c in changes] == [str(c) for c in dry]
    assert "~ agent nina: capacity 2 -> 5" in {str(c) for c in changes}
    assert any(c.field == "retired" and c.name == "leo" for c in changes)
    with store.session() as s:
        assert not s.get(Agent, "leo").active and not s.get(Agent, "leo").available
        assert "leo" not in store_desk.current(s)["agents"]
        log = store_desk.changes_log(s)
        assert log[0]["actor"] == "bob" and log[0]["source"] == "v2"


def test_senior_routing_prefers_seniority_over_load(store):
    with store.session() as s:
        store_desk.apply(s, loads_desk(SMALL), actor="t", source="t")
        plain = [a.id for a, _ in routing.candidates(s, "Network")]
        senior = [a.id for a, _ in routing.candidates(s, "Network", senior=True)]
    assert plain == ["leo", "nina"]  # no skills wanted, equal load: by id
    assert senior == ["nina", "leo"]


def test_cli_apply_dry_run_then_twice(tmp_path, capsys):
    from triage_cli import main

    db = f"sqlite:///{tmp_path / 'desk.db'}"
    assert main(["desk", "apply", str(DEMO_DESK), "--database", db, "--dry-run"]) == 0
    assert "would change" in capsys.readouterr().out
    assert main(["desk", "apply", str(DEMO_DESK), "--database", db, "--actor", "ann"]) == 0
    out = capsys.readouterr().out
    assert "+ agent nina" in out and "changed" in out
    assert main(["desk", "apply", str(DEMO_DESK), "--database", db]) == 0
    assert capsys.readouterr().out.strip() == "triage desk apply: no changes"
    assert main(["desk", "log", "--database", db, "--limit", "3"]) == 0
    assert "ann" in capsys.readouterr().out


def test_cli_check_refuses_unknown_teams(tmp_path, capsys):
    from triage_cli import main

    desk = tmp_path / "desk.yaml"
    desk.write_text("teams: {Network: {}}\n")
    assert main(["desk", "check", str(desk)]) == 2
    err = capsys.readouterr().err
    assert "'Service Desk'" in err and "'Identity & Access'" in err
