"""Declarative rules: ordered conditions on ticket fields → actions, plus SLA assignment.

A rule file (``triage/defaults/rules.yaml`` ships with the package) declares
calendars, SLA policies, escalation levels and ordered rules. Everything is
validated at :meth:`RuleSet.load`: an unknown field, operator or action, a wrong
type, an unknown policy or calendar, a bad time zone or regex is a
:class:`ConfigError` naming the file and line, so the service never starts on a
broken policy. :meth:`RuleSet.evaluate` is then a pure function of the fields
and ``now``.

Rules run in file order; each matching rule applies its actions before the next
rule is tested (so a rule that raises priority can trigger a later rule on
priority); ``stop: true`` ends processing. String comparisons ignore case.
Priority 1 is the most urgent, so ``lte: 2`` means "P1 or P2".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn

from .configfile import LList, LMap, line_of, load_yaml
from .errors import ConfigError
from .rule_conditions import apply_actions, parse_rules, prepare_fields
from .rule_vocabulary import (
    ACCEPTABLE as ACCEPTABLE,
    ACTIONS as ACTIONS,
    FIELDS as FIELDS,
    OPERATORS as OPERATORS,
    TEAM_STATE_FIELDS,  # noqa: F401
    Condition as Condition,
    Rule,
    field_type as field_type,
)  # re-exported: the vocabulary lives in rule_vocabulary
from .sla import (
    Calendar,
    Clock,
    EscalationLevel,
    SlaPolicy,
    SlaTarget,
    add_business_time,
    as_utc,
    parse_duration,
    parse_hours,
)

DEFAULT_RULES = Path(__file__).parent / "defaults" / "rules.yaml"

TOP_KEYS = {
    "version",
    "teams",
    "calendars",
    "sla_policies",
    "default_policy",
    "default_priority",
    "escalation_levels",
    "rules",
}


@dataclass
class SlaAssignment:
    policy: str
    priority: int
    tier: str | None
    calendar: str
    first_response_minutes: float
    resolution_minutes: float
    first_response_due: datetime
    resolution_due: datetime

    def to_dict(self) -> dict:
        # spelled out: dataclasses.asdict deep-copies every value, a cost on each intake
        return {
            "policy": self.policy,
            "priority": self.priority,
            "tier": self.tier,
            "calendar": self.calendar,
            "first_response_minutes": self.first_response_minutes,
            "resolution_minutes": self.resolution_minutes,
            "first_response_due": self.first_response_due.isoformat(),
            "resolution_due": self.resolution_due.isoformat(),
        }


@dataclass
class Outcome:
    fields: dict
    team: str | None
    sla: SlaAssignment | None
    tags: list[str] = field(default_factory=list)
    escalate: bool = False
    fired: list[str] = field(default_factory=list)
    senior: bool = False  # a rule asked for a senior agent of the team
    accepted: list[str] = field(default_factory=list)  # fields taken from the model's suggestion

    def to_dict(self) -> dict:
        return {
            "fields": dict(self.fields),
            "team": self.team,
            "tags": list(self.tags),
            "escalate": self.escalate,
            "fired": list(self.fired),
            "senior": self.senior,
            "accepted": list(self.accepted),
            "sla": self.sla.to_dict() if self.sla else None,
        }


class _Parser:
    """Turns the line-aware YAML into validated objects; every error carries file:line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.used_fields: set[str] = set()  # fields the rules' conditions read (RuleSet.load)

    def fail(self, reason: str, line: int | None) -> NoReturn:
        raise ConfigError(reason, file=self.file, line=line)

    def mapping(self, value, line, what: str, allowed: set[str] | None = None) -> LMap:
        if not isinstance(value, dict):
            self.fail(f"{what}: expected a mapping, got {type(value).__name__}", line)
        for key in value:
            if allowed is not None and key not in allowed:
                self.fail(
                    f"{what}: unknown key {key!r} (expected one of {sorted(allowed)})",
                    line_of(value, key, line),
                )
        return value

    def seq(self, value, line, what: str) -> LList:
        if not isinstance(value, list):
            self.fail(f"{what}: expected a list, got {type(value).__name__}", line)
        return value

    def text(self, value, line, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{what}: expected a non-empty string, got {value!r}", line)
        return value

    def priority(self, value, line, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            self.fail(f"{what}: expected a priority 1-5 (1 = most urgent), got {value!r}", line)
        return value

    def duration(self, value, line, what: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(f"{what}: {e}", line)

    # ---------------------------------------------------------- sections
    def calendars(self, doc: LMap) -> dict[str, Calendar]:
        section = self.mapping(doc.get("calendars"), line_of(doc, "calendars"), "calendars")
        out = {}
        for name, spec in section.items():
            line = line_of(section, name)
            spec = self.mapping(spec, line, f"calendar {name}", {"timezone", "hours", "holidays"})
            out[name] = self.calendar(str(name), spec, line)
        if not out:
            self.fail("calendars: declare at least one calendar", line_of(doc, "calendars"))
        return out

    def calendar(self, name: str, spec: LMap, line: int) -> Calendar:
        tz = self.text(spec.get("timezone", "UTC"), line_of(spec, "timezone", line), f"calendar {name}")
        holidays = []
        hol = self.seq(spec.get("holidays", LList()), line_of(spec, "holidays", line), "holidays")
        for i, d in enumerate(hol):
            if not isinstance(d, date) or isinstance(d, datetime):
                self.fail(
                    f"calendar {name}: expected a holiday date YYYY-MM-DD, got {d!r}", line_of(hol, i, line)
                )
            holidays.append(d)
        hours = spec.get("hours")
        try:
            if hours == "24x7":
                return Calendar.always(name, tz, holidays)
            hours = self.mapping(
                hours,
                line_of(spec, "hours", line),
                f"calendar {name} hours",
                {"mon", "tue", "wed", "thu", "fri", "sat", "sun"},
            )
            for day, value in hours.items():
                for item in [value] if isinstance(value, str) else self.seq(value, line_of(hours, day), day):
                    try:
                        parse_hours(item)
                    except ValueError as e:
                        self.fail(f"calendar {name} {day}: {e}", line_of(hours, day, line))
            return Calendar.weekly(name, tz, dict(hours), holidays)
        except ValueError as e:
            self.fail(f"calendar {name}: {e}", line_of(spec, "timezone", line))

    def policies(self, doc: LMap, calendars: dict[str, Calendar]) -> dict[str, SlaPolicy]:
        section = self.mapping(doc.get("sla_policies"), line_of(doc, "sla_policies"), "sla_policies")
        out = {}
        for name, spec in section.items():
            line = line_of(section, name)
            spec = self.mapping(spec, line, f"policy {name}", {"calendar", "targets"})
            cal = spec.get("calendar")
            if cal not in calendars:
                self.fail(
                    f"policy {name}: unknown calendar {cal!r} (declared: {sorted(calendars)})",
                    line_of(spec, "calendar", line),
                )
            rows = self.seq(spec.get("targets"), line_of(spec, "targets", line), f"policy {name} targets")
            targets = tuple(self.target(str(name), r, line_of(rows, i, line)) for i, r in enumerate(rows))
            missing = {1, 2, 3, 4} - {t.priority for t in targets if t.tier is None}
            if missing:
                self.fail(
                    f"policy {name}: no target for priorities {sorted(missing)} (any tier)",
                    line_of(spec, "targets", line),
                )
            out[str(name)] = SlaPolicy(str(name), calendars[cal], targets)
        if not out:
            self.fail("sla_policies: declare at least one policy", line_of(doc, "sla_policies"))
        return out

    def target(self, policy: str, row, line: int) -> SlaTarget:
        row = self.mapping(
            row, line, f"policy {policy} target", {"priority", "tier", "first_response", "resolution"}
        )
        for key in ("priority", "first_response", "resolution"):
            if key not in row:
                self.fail(f"policy {policy} target: missing {key!r}", line)
        tier = row.get("tier")
        if tier is not None:
            tier = self.text(tier, line_of(row, "tier", line), "tier").lower()
        return SlaTarget(
            self.priority(row["priority"], line_of(row, "priority", line), "priority"),
            tier,
            self.duration(row["first_response"], line_of(row, "first_response", line), "first_response"),
            self.duration(row["resolution"], line_of(row, "resolution", line), "resolution"),
        )

    def levels(self, doc: LMap) -> list[EscalationLevel]:
        rows = self.seq(
            doc.get("escalation_levels", LList()), line_of(doc, "escalation_levels"), "escalation_levels"
        )
        out = []
        for i, row in enumerate(rows):
            line = line_of(rows, i)
            row = self.mapping(row, line, "escalation level", {"name", "at"})
            at = row.get("at")
            if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 < at <= 10:
                self.fail(
                    f"escalation level: expected 'at' as a fraction of the target (e.g. 0.75), got {at!r}",
                    line_of(row, "at", line),
                )
            out.append(EscalationLevel(self.text(row.get("name"), line, "escalation level name"), float(at)))
        if len({lv.name for lv in out}) != len(out):
            self.fail("escalation_levels: names must be unique", line_of(doc, "escalation_levels"))
        return sorted(out, key=lambda lv: lv.at)


class RuleSet:
    """A validated rule file. Build with :meth:`load`; :meth:`evaluate` is pure."""

    def __init__(
        self, rules, calendars, policies, levels, default_policy, default_priority, teams, file: str
    ) -> None:
        self.rules: list[Rule] = rules
        self.calendars: dict[str, Calendar] = calendars
        self.policies: dict[str, SlaPolicy] = policies
        self.escalation_levels: list[EscalationLevel] = levels
        self.default_policy: str = default_policy
        self.default_priority: int = default_priority
        self.teams: list[str] | None = teams
        self.file = file
        self.reads_team_state = False  # set by load: a rule reads team.backlog / oldest_hours

    @classmethod
    def load(cls, path: str | Path | None = None) -> "RuleSet":
        """Read and validate a rule file (the packaged defaults when ``path`` is None)."""
        file = str(path or DEFAULT_RULES)
        doc = load_yaml(file)
        p = _Parser(file)
        p.mapping(doc, getattr(doc, "line", 1), "rule file", TOP_KEYS)
        if doc.get("version", 1) != 1:
            p.fail(f"version: expected 1, got {doc.get('version')!r}", line_of(doc, "version"))
        calendars = p.calendars(doc)
        policies = p.policies(doc, calendars)
        default = doc.get("default_policy", next(iter(policies)))
        if default not in policies:
            p.fail(
                f"default_policy: unknown SLA policy {default!r} (declared: {sorted(policies)})",
                line_of(doc, "default_policy"),
            )
        prio = p.priority(
            doc.get("default_priority", 3), line_of(doc, "default_priority"), "default_priority"
        )
        teams = None
        if "teams" in doc:
            seq = p.seq(doc["teams"], line_of(doc, "teams"), "teams")
            teams = [p.text(t, line_of(seq, i), "team") for i, t in enumerate(seq)]
        p.used_fields = set()
        rules = parse_rules(p, doc, set(policies), teams)
        ruleset = cls(rules, calendars, policies, p.levels(doc), default, prio, teams, file)
        ruleset.reads_team_state = bool(p.used_fields & TEAM_STATE_FIELDS)
        return ruleset

    def describe(self) -> list[dict]:
        """The active rules as an admin sees them: name, line, description, actions."""
        return [
            {"name": r.name, "line": r.line, "description": r.description, "actions": dict(r.actions)}
            for r in self.rules
        ]

    def evaluate(self, fields: dict, now: datetime) -> Outcome:
        """Apply the rules in order to a copy of ``fields``; assign the SLA from the result."""
        state = prepare_fields(fields, self.default_priority)
        out = Outcome(fields=state, team=state.get("team"), sla=None)
        policy = self.default_policy
        for rule in self.rules:
            if not rule.condition(state):
                continue
            out.fired.append(rule.name)
            policy = apply_actions(rule.actions, state, out) or policy
            if rule.actions.get("stop"):
                break
        out.team = state.get("team")
        out.sla = self.assign_sla(policy, state, now)
        return out

    def assign_sla(self, policy_name: str, state: dict, now: datetime) -> SlaAssignment:
        policy = self.policies[policy_name]
        tier = state.get("customer_tier")
        tier = str(tier).lower() if tier else None
        target = policy.target(state["priority"], tier)
        now = as_utc(now)
        cal = policy.calendar
        return SlaAssignment(
            policy.name,
            state["priority"],
            tier,
            cal.name,
            target.first_response,
            target.resolution,
            add_business_time(now, target.first_response, cal),
            add_business_time(now, target.resolution, cal),
        )

    def start_clocks(self, sla: SlaAssignment, now: datetime) -> dict[str, Clock]:
        """The two clocks the store keeps for a new ticket (each carries its calendar)."""
        cal = self.calendars[sla.calendar]
        return {
            "first_response": Clock.start(now, sla.first_response_minutes, cal, "first_response"),
            "resolution": Clock.start(now, sla.resolution_minutes, cal, "resolution"),
        }
