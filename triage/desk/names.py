"""Every team the rules or the model can name must exist in the desk.

A rule routing to "Access" on a desk whose team is "Identity & Access" does not
fail: it silently fills a queue nobody reads. So the service refuses to start
on such a name, and says which names, in which file, on which line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .spec import Desk


@dataclass(frozen=True)
class UnknownTeam:
    name: str
    file: str
    line: int | None
    where: str

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line else self.file
        return f"{at}: {self.where} names team {self.name!r}"


def unknown_teams(desk: Desk, rules=None, team_labels=(), bundle_file: str = "bundle") -> list[UnknownTeam]:
    """Names the rules (``route_to``, ``teams:``) and the bundle's team head use that the desk lacks.

    A bundle label counts as known when ``team_map`` maps it to a desk team.
    """
    out: list[UnknownTeam] = []
    if rules is not None:
        for rule in getattr(rules, "rules", []):
            team = rule.actions.get("route_to")
            if team is not None and team not in desk.teams:
                out.append(UnknownTeam(team, rules.file, rule.line, f"rule {rule.name} route_to"))
        for team in getattr(rules, "teams", None) or []:
            if team not in desk.teams:
                out.append(UnknownTeam(team, rules.file, None, "the teams list"))
    for label in team_labels:
        if desk.team_for(str(label)) not in desk.teams:
            out.append(
                UnknownTeam(
                    str(label), bundle_file, None, "the team head (map it under team_map in the desk file)"
                )
            )
    return out


def check_names(desk: Desk, rules=None, team_labels=(), bundle_file: str = "bundle") -> None:
    """Raise one :class:`ConfigError` listing every unknown team name, or return."""
    unknown = unknown_teams(desk, rules, team_labels, bundle_file)
    if unknown:
        listed = "; ".join(str(u) for u in unknown)
        raise ConfigError(f"unknown team(s) (desk teams: {sorted(desk.teams)}): {listed}", file=desk.file)
    calendars = getattr(rules, "calendars", None)
    if calendars is not None:
        for team in desk.teams.values():
            if team.calendar and team.calendar not in calendars:
                raise ConfigError(
                    f"team {team.name}: unknown calendar {team.calendar!r} "
                    f"(rules file {rules.file} declares {sorted(calendars)})",
                    file=desk.file,
                    line=team.line,
                )
