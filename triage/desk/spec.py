"""``desk.yaml``: the teams, agents and queues a help desk runs with, validated at load.

The file is the source of truth an admin edits (or generates from a directory)
and applies with ``triage desk apply``; the database then holds the same
objects so routing and pages read them without the file. Every error names
the file and line, like the rules file, because the person fixing it has the
file open, not the parser.

Example::

    version: 1
    teams:
      Network:
        calendar: office-eu             # a calendar of the rules file
        escalation_contacts: [noc@acme.example]
    agents:
      - id: nina                        # the agent's API key name / sign-in id
        name: Nina Okafor
        email: nina@acme.example
        teams: [Network]
        skills: [vpn, wifi]
        capacity: 8                     # open tickets at most
        seniority: senior               # junior | regular | senior | lead
        available: true
    queues:
      - {name: major-incidents, team: Network}
    team_map:                           # bundle team-head class -> desk team
      Networking: Network
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..configfile import LList, LMap, line_of, load_yaml, loads_yaml
from ..errors import ConfigError

# Ranks: routing prefers higher ranks when a ticket asks for a senior agent.
SENIORITY = {"junior": 1, "regular": 2, "senior": 3, "lead": 4}
TOP_KEYS = {"version", "teams", "agents", "queues", "team_map"}
TEAM_KEYS = {"calendar", "escalation_contacts", "description"}
AGENT_KEYS = {"id", "name", "email", "teams", "skills", "capacity", "seniority", "available"}
QUEUE_KEYS = {"name", "team", "description"}


@dataclass(frozen=True)
class TeamSpec:
    name: str
    calendar: str | None = None
    escalation_contacts: tuple[str, ...] = ()
    description: str = ""
    line: int = 0

    def data(self) -> dict:
        return {
            "calendar": self.calendar,
            "escalation_contacts": list(self.escalation_contacts),
            "description": self.description,
        }


@dataclass(frozen=True)
class AgentSpec:
    id: str
    name: str = ""
    email: str | None = None
    teams: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    capacity: int = 10
    seniority: str = "regular"
    available: bool = True
    line: int = 0

    def data(self) -> dict:
        return {
            "name": self.name or self.id,
            "email": self.email,
            "teams": sorted(self.teams),
            "skills": sorted(self.skills),
            "capacity": self.capacity,
            "seniority": self.seniority,
            "available": self.available,
        }


@dataclass(frozen=True)
class QueueSpec:
    name: str
    team: str
    description: str = ""
    line: int = 0

    def data(self) -> dict:
        return {"team": self.team, "description": self.description}


@dataclass
class Desk:
    teams: dict[str, TeamSpec] = field(default_factory=dict)
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    team_map: dict[str, str] = field(default_factory=dict)
    file: str = "<desk>"

    def team_for(self, label: str | None) -> str | None:
        """The desk team a model's team label stands for (mapped, else itself)."""
        if label is None:
            return None
        return self.team_map.get(str(label), str(label))

    def to_dict(self) -> dict:
        return {
            "teams": {n: t.data() for n, t in sorted(self.teams.items())},
            "agents": {a: s.data() for a, s in sorted(self.agents.items())},
            "queues": {q: s.data() for q, s in sorted(self.queues.items())},
            "team_map": dict(sorted(self.team_map.items())),
        }


def load_desk(path: str | Path) -> Desk:
    """Read and validate a desk file; a :class:`ConfigError` names file and line."""
    return parse_desk(load_yaml(path), str(path))


def loads_desk(text: str, file: str = "<string>") -> Desk:
    return parse_desk(loads_yaml(text, file), file)


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, reason: str, line: int | None):
        raise ConfigError(reason, file=self.file, line=line)

    def mapping(self, value, line: int, what: str, allowed: set[str]) -> LMap:
        if not isinstance(value, dict):
            self.fail(f"{what}: expected a mapping, got {type(value).__name__}", line)
        for key in value:
            if key not in allowed:
                self.fail(
                    f"{what}: unknown key {key!r} (expected one of {sorted(allowed)})",
                    line_of(value, key, line),
                )
        return value

    def text(self, value, line: int, what: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{what}: expected a non-empty string, got {value!r}", line)
        return value.strip()

    def texts(self, value, line: int, what: str) -> tuple[str, ...]:
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.fail(f"{what}: expected a list of strings, got {type(value).__name__}", line)
        lines = getattr(items, "lines", None) or [line] * len(items)
        return tuple(self.text(v, lines[i], what) for i, v in enumerate(items))


def parse_desk(doc, file: str) -> Desk:
    r = _Reader(file)
    doc = r.mapping(doc if doc is not None else LMap(), getattr(doc, "line", 1), "desk file", TOP_KEYS)
    if doc.get("version", 1) != 1:
        r.fail(f"version: expected 1, got {doc.get('version')!r}", line_of(doc, "version"))
    desk = Desk(file=file)
    teams = doc.get("teams") or LMap()
    teams = r.mapping(teams, line_of(doc, "teams"), "teams", set(teams))
    for name, spec in teams.items():
        line = line_of(teams, name)
        spec = r.mapping(spec if spec is not None else LMap(), line, f"team {name}", TEAM_KEYS)
        desk.teams[str(name)] = TeamSpec(
            r.text(str(name), line, "team name"),
            r.text(spec.get("calendar"), line_of(spec, "calendar", line), "calendar", optional=True),
            r.texts(
                spec.get("escalation_contacts"),
                line_of(spec, "escalation_contacts", line),
                "escalation_contacts",
            ),
            str(spec.get("description") or ""),
            line,
        )
    for i, row in enumerate(_seq(r, doc, "agents")):
        line = line_of(doc["agents"], i)
        desk_agent = _agent(r, row, line, desk)
        if desk_agent.id in desk.agents:
            r.fail(
                f"agent {desk_agent.id!r} is listed twice (first on line {desk.agents[desk_agent.id].line})",
                line,
            )
        desk.agents[desk_agent.id] = desk_agent
    for i, row in enumerate(_seq(r, doc, "queues")):
        line = line_of(doc["queues"], i)
        row = r.mapping(row, line, "queue", QUEUE_KEYS)
        name = r.text(row.get("name"), line, "queue name")
        team = r.text(row.get("team"), line_of(row, "team", line), "queue team")
        if team not in desk.teams:
            r.fail(
                f"queue {name}: unknown team {team!r} (teams: {sorted(desk.teams)})",
                line_of(row, "team", line),
            )
        if name in desk.queues or name == "triage":
            r.fail(f"queue {name!r} is declared twice (or is the built-in triage queue)", line)
        desk.queues[name] = QueueSpec(name, team, str(row.get("description") or ""), line)
    tmap = doc.get("team_map") or LMap()
    tmap = r.mapping(tmap, line_of(doc, "team_map"), "team_map", set(tmap))
    for label, team in tmap.items():
        line = line_of(tmap, label)
        team = r.text(team, line, f"team_map {label}")
        if team not in desk.teams:
            r.fail(f"team_map: {label!r} maps to unknown team {team!r} (teams: {sorted(desk.teams)})", line)
        desk.team_map[str(label)] = team
    return desk


def _seq(r: _Reader, doc: LMap, key: str) -> LList:
    value = doc.get(key)
    if value is None:
        return LList()
    if not isinstance(value, list):
        r.fail(f"{key}: expected a list, got {type(value).__name__}", line_of(doc, key))
    return value


def _agent(r: _Reader, row, line: int, desk: Desk) -> AgentSpec:
    row = r.mapping(row, line, "agent", AGENT_KEYS)
    agent_id = r.text(row.get("id"), line, "agent id")
    teams = r.texts(row.get("teams"), line_of(row, "teams", line), f"agent {agent_id} teams")
    for team in teams:
        if team not in desk.teams:
            r.fail(
                f"agent {agent_id}: unknown team {team!r} (teams: {sorted(desk.teams)})",
                line_of(row, "teams", line),
            )
    capacity = row.get("capacity", 10)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= 1000:
        r.fail(
            f"agent {agent_id}: capacity: expected a whole number 0-1000, got {capacity!r}",
            line_of(row, "capacity", line),
        )
    seniority = row.get("seniority", "regular")
    if seniority not in SENIORITY:
        r.fail(
            f"agent {agent_id}: seniority: expected one of {list(SENIORITY)}, got {seniority!r}",
            line_of(row, "seniority", line),
        )
    available = row.get("available", True)
    if not isinstance(available, bool):
        r.fail(
            f"agent {agent_id}: available: expected true or false, got {available!r}",
            line_of(row, "available", line),
        )
    email = r.text(row.get("email"), line_of(row, "email", line), "email", optional=True)
    if email is not None and "@" not in email:
        r.fail(f"agent {agent_id}: email: expected an address, got {email!r}", line_of(row, "email", line))
    return AgentSpec(
        agent_id,
        str(row.get("name") or agent_id),
        email,
        teams,
        r.texts(row.get("skills"), line_of(row, "skills", line), "skills"),
        capacity,
        seniority,
        available,
        line,
    )


def as_dict(spec) -> dict:
    return asdict(spec)
