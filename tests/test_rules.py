"""The rules engine: every condition and action, ordering, stop, fired list, and broken files."""

from __future__ import annotations

import re
import textwrap
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.errors import ConfigError, InputError
from triage.rules import RuleSet

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 09:00 UTC = 10:00 Berlin

HEADER = """\
version: 1
calendars:
  always: {timezone: UTC, hours: 24x7}
  office:
    timezone: Europe/Berlin
    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00", thu: "09:00-17:00", fri: "09:00-17:00"}
    holidays: [2026-12-25]
sla_policies:
  std:
    calendar: office
    targets:
      - {priority: 1, first_response: 30m, resolution: 4h}
      - {priority: 2, first_response: 1h, resolution: 8h}
      - {priority: 3, first_response: 4h, resolution: 16h}
      - {priority: 4, first_response: 8h, resolution: 40h}
      - {priority: 3, tier: gold, first_response: 2h, resolution: 8h}
  vip:
    calendar: always
    targets:
      - {priority: 1, first_response: 15m, resolution: 4h}
      - {priority: 2, first_response: 30m, resolution: 8h}
      - {priority: 3, first_response: 1h, resolution: 16h}
      - {priority: 4, first_response: 2h, resolution: 24h}
default_policy: std
escalation_levels:
  - {name: warn, at: 0.75}
  - {name: escalate, at: 1.0}
"""


def ruleset(tmp_path, rules: str, header: str = HEADER) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(header + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  "))
    return RuleSet.load(path)


def one(tmp_path, when: str, then: str = "{add_tags: [hit]}"):
    return ruleset(tmp_path, f"- name: r\n  when: {when}\n  then: {then}\n")


@pytest.mark.parametrize(
    "when, fields, hit",
    [
        ("{field: type, equals: incident}", {"type": "Incident"}, True),
        ("{field: type, equals: incident}", {"type": "request"}, False),
        ("{field: team, in: [Access, Storage]}", {"team": "storage"}, True),
        ("{field: channel, in: [phone, chat]}", {"channel": "email"}, False),
        ("{field: customer_tier, equals: gold}", {"customer_tier": "GOLD"}, True),
        ("{field: vip, equals: true}", {"vip": 1}, True),
        ("{field: vip, equals: true}", {}, False),
        ("{field: affected_service, equals: vpn}", {"affected_service": "vpn"}, True),
        ("{field: major_incident, equals: true}", {"major_incident": "INC-7"}, True),
        ("{field: text, contains_any: [locked out, password]}", {"subject": "I am LOCKED  out"}, True),
        ("{field: text, contains_any: [pass]}", {"body": "password expired"}, False),  # whole words
        ("{field: body, matches: 'disk (full|quota)'}", {"body": "Disk Quota exceeded"}, True),
        ("{field: priority, lte: 2}", {"priority": "P2"}, True),
        ("{field: priority, lte: 2}", {"priority": 3}, False),
        ("{field: priority, gte: 3}", {}, True),  # default priority 3
        ("{field: urgency, gte: 2}", {"urgency": "3"}, True),
        (
            "{all: [{field: vip, equals: true}, {field: priority, lte: 2}]}",
            {"vip": True, "priority": 3},
            False,
        ),
        (
            "{any: [{field: vip, equals: true}, {field: priority, lte: 2}]}",
            {"vip": True, "priority": 3},
            True,
        ),
        ("{not: {field: channel, equals: email}}", {"channel": "web"}, True),
    ],
)
def test_conditions(tmp_path, when, fields, hit):
    out = one(tmp_path, when).evaluate(fields, NOW)
    assert (out.fired == ["r"]) is hit
    assert (out.tags == ["hit"]) is hit


def test_actions_and_sla_assignment(tmp_path):
    rs = one(
        tmp_path,
        "{field: vip, equals: true}",
        "{raise_priority: 2, sla_policy: vip, route_to: VIP Desk, add_tags: [vip, vip], escalate: true}",
    )
    out = rs.evaluate({"vip": True, "priority": 3}, NOW)
    assert out.fields["priority"] == 2 and out.team == "VIP Desk" and out.escalate
    assert out.tags == ["vip"]
    assert out.sla.policy == "vip" and out.sla.first_response_minutes == 30
    assert out.sla.first_response_due == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    # raise never lowers: a P1 stays P1
    assert rs.evaluate({"vip": True, "priority": 1}, NOW).fields["priority"] == 1


def test_set_priority_and_business_time_due(tmp_path):
    out = one(tmp_path, "{field: type, equals: incident}", "{set_priority: 4}").evaluate(
        {"type": "incident", "priority": 1}, datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    )  # Fri 16:00
    assert out.sla.policy == "std" and out.sla.priority == 4
    assert out.sla.first_response_due == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Mon 16:00


def test_tier_row_is_used(tmp_path):
    out = one(tmp_path, "{field: vip, equals: true}").evaluate({"customer_tier": "Gold"}, NOW)
    assert out.sla.tier == "gold" and out.sla.first_response_minutes == 120


def test_order_later_rules_see_earlier_actions_and_stop(tmp_path):
    rs = ruleset(
        tmp_path,
        """\
        - name: vip
          when: {field: vip, equals: true}
          then: {set_priority: 1}
        - name: p1
          when: {field: priority, lte: 1}
          then: {add_tags: [p1], stop: true}
        - name: never
          when: {field: priority, lte: 4}
          then: {add_tags: [late]}
        - name: switched-off
          enabled: false
          when: {field: vip, equals: true}
          then: {add_tags: [disabled]}
        """,
    )
    out = rs.evaluate({"vip": True}, NOW)
    assert out.fired == ["vip", "p1"] and out.tags == ["p1"]
    out = rs.evaluate({}, NOW)
    assert out.fired == ["never"] and out.sla.policy == "std"
    described = rs.describe()
    assert [r["name"] for r in described] == ["vip", "p1", "never"]  # disabled rules are left out
    assert described[0]["line"] == rule_line() and described[1]["actions"] == {
        "add_tags": ["p1"],
        "stop": True,
    }


def test_evaluate_is_pure_and_rejects_bad_priority(tmp_path):
    rs = one(tmp_path, "{field: vip, equals: true}", "{set_priority: 1}")
    fields = {"vip": True, "priority": 3}
    rs.evaluate(fields, NOW)
    assert fields == {"vip": True, "priority": 3}
    with pytest.raises(InputError):
        rs.evaluate({"priority": "urgent"}, NOW)


def test_default_file_loads_and_a_vip_rule_raises_priority():
    rs = RuleSet.load()
    out = rs.evaluate({"vip": True, "priority": 4, "subject": "printer"}, NOW)
    assert "vip-customer" in out.fired and out.fields["priority"] == 2
    assert out.sla.policy == "vip"
    major = rs.evaluate({"major_incident": True, "priority": 3}, NOW)
    assert major.fired == ["major-incident"] and major.escalate
    assert [lv.name for lv in rs.escalation_levels] == ["warn", "escalate", "manager"]
    clocks = rs.start_clocks(out.sla, NOW)
    assert clocks["first_response"].due_at(NOW) == out.sla.first_response_due


# ------------------------------------------------------------- broken files
def broken(tmp_path, rules: str, header: str = HEADER):
    with pytest.raises(ConfigError) as e:
        ruleset(tmp_path, rules, header)
    return e.value


def rule_line(header: str = HEADER) -> int:
    """Line number of the first rule's ``- name:`` line in the written file."""
    return header.count("\n") + 2


@pytest.mark.parametrize(
    "rule, offset, reason",
    [
        ("- name: r\n  when: {field: colour, equals: red}\n  then: {stop: true}\n", 1, "unknown field"),
        ("- name: r\n  when: {field: type, resembles: x}\n  then: {stop: true}\n", 1, "unknown operator"),
        (
            "- name: r\n  when: {field: type, equals: x}\n  then: {teleport: true}\n",
            2,
            "unknown key 'teleport'",
        ),
        (
            "- name: r\n  when: {field: type, equals: x}\n  then: {sla_policy: gold}\n",
            2,
            "unknown SLA policy",
        ),
        ("- name: r\n  when: {field: priority, lte: high}\n  then: {stop: true}\n", 1, "expected int"),
        ("- name: r\n  when: {field: vip, contains_any: [x]}\n  then: {stop: true}\n", 1, "text fields"),
        ("- name: r\n  when: {field: team, gte: 2}\n  then: {stop: true}\n", 1, "numeric fields"),
        (
            "- name: r\n  when: {field: body, matches: '(unclosed'}\n  then: {stop: true}\n",
            1,
            "regular expression",
        ),
        ("- name: r\n  when: {field: type, equals: x}\n  then: {set_priority: 7}\n", 2, "priority 1-5"),
        ("- name: r\n  when: {field: type, equals: x}\n  then: {escalate: maybe}\n", 2, "true or false"),
        ("- name: r\n  when: {field: type, equals: x}\n", 0, "missing 'then'"),
        (
            "- name: r\n  when:\n    all:\n      - {field: type, equals: x}\n      - {field: nope, equals: x}\n"
            "  then: {stop: true}\n",
            4,
            "unknown field",
        ),
        (
            "- name: r\n  when: {field: type, equals: x}\n  then: {stop: true}\n"
            "- name: r\n  when: {field: type, equals: y}\n  then: {stop: true}\n",
            3,
            "duplicate rule name",
        ),
        (
            "- name: r\n  when: {field: type, equals: x}\n  then: {stop: true}\n  colour: red\n",
            3,
            "unknown key",
        ),
    ],
)
def test_broken_rule_is_rejected_with_its_line(tmp_path, rule, offset, reason):
    err = broken(tmp_path, rule)
    assert reason in str(err)
    assert err.details["line"] == rule_line() + offset
    assert err.details["file"].endswith("rules.yaml")


def test_broken_header_lines(tmp_path):
    ok_rule = "- name: r\n  when: {field: type, equals: x}\n  then: {stop: true}\n"
    bad_tz = HEADER.replace("timezone: Europe/Berlin", "timezone: Europe/Atlantis")
    err = broken(tmp_path, ok_rule, bad_tz)
    assert "time zone" in str(err) and err.details["line"] == 5
    bad_cal = HEADER.replace("calendar: always", "calendar: nights")
    err = broken(tmp_path, ok_rule, bad_cal)
    assert (
        "unknown calendar" in str(err)
        and err.details["line"] == bad_cal.splitlines().index("    calendar: nights") + 1
    )
    bad_dur = HEADER.replace("first_response: 15m", "first_response: soon")
    assert "duration" in str(broken(tmp_path, ok_rule, bad_dur))
    missing = HEADER.replace("      - {priority: 4, first_response: 2h, resolution: 24h}\n", "")
    assert "no target for priorities [4]" in str(broken(tmp_path, ok_rule, missing))
    err = broken(tmp_path, ok_rule, HEADER.replace("default_policy: std", "default_policy: gold"))
    assert "unknown SLA policy" in str(err)
    assert err.details["line"] == HEADER.splitlines().index("default_policy: std") + 1
    err = broken(tmp_path, ok_rule, HEADER + "surprise: 1\n")
    assert "unknown key 'surprise'" in str(err) and err.details["line"] == HEADER.count("\n") + 1
    err = broken(
        tmp_path, ok_rule, HEADER.replace("  - {name: warn, at: 0.75}", "  - {name: warn, at: lots}")
    )
    assert "fraction" in str(err)


def test_yaml_syntax_and_duplicate_keys_report_lines(tmp_path):
    err = broken(tmp_path, "- name: r\n  when: {field: type, equals: [x\n  then: {stop: true}\n")
    assert "YAML syntax" in str(err) and err.details["line"] >= rule_line()
    err = broken(tmp_path, "- name: r\n  name: s\n  when: {field: type, equals: x}\n  then: {stop: true}\n")
    assert "duplicate key" in str(err) and err.details["line"] == rule_line() + 1


def test_declared_teams_catch_typos(tmp_path):
    header = HEADER + "teams: [Access, Storage]\n"
    err = broken(tmp_path, "- name: r\n  when: {field: type, equals: x}\n  then: {route_to: Acess}\n", header)
    assert "unknown team" in str(err) and err.details["line"] == rule_line(header) + 2


def test_itil_planning_priority_uses_the_p4_target_when_a_policy_has_no_p5_row():
    from triage.rules import DEFAULT_RULES

    rules = RuleSet.load(DEFAULT_RULES)
    now = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    p4 = rules.evaluate({"priority": 4, "text": "x"}, now)
    p5 = rules.evaluate({"priority": 5, "text": "x"}, now)
    assert p5.sla.priority == 5
    assert p5.sla.resolution_due == p4.sla.resolution_due


def _whole_words_regex(phrases: list[str], text: str) -> bool:
    """contains_any as it was written before the substring test: the regex alone."""
    words = "|".join(re.escape(" ".join(w.lower().split())) for w in phrases)
    return re.search(rf"(?<!\w)(?:{words})(?!\w)", text) is not None


_PHRASE_CHARS = "ab é_1+#-. "


@settings(max_examples=400, deadline=None)
@given(
    phrases=st.lists(st.text(_PHRASE_CHARS, max_size=5), min_size=1, max_size=4),
    text=st.text(_PHRASE_CHARS + "AB\t\n", max_size=40),
)
def test_contains_any_answers_as_the_whole_word_regex(phrases, text):
    """The substring test in front of contains_any's regex never changes its answer: phrases
    at the edges, inside longer words, with punctuation, accents, empty or repeated."""
    from triage.rule_conditions import _contains_any

    squeezed = " ".join(text.lower().split())
    on_text = _contains_any("text", phrases)
    assert on_text({"body": text}) is _whole_words_regex(phrases, squeezed)
    on_body = _contains_any("body", phrases)  # a named field: squeezed, not lower-cased
    assert on_body({"body": text}) is _whole_words_regex(phrases, " ".join(text.split()))
