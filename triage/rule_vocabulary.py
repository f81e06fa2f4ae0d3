"""The vocabulary of the rules engine: the fields a condition may test, its operators, its
actions, and the parsed :class:`Rule`.

One module that both ``rules.py`` (the rule file, SLA assignment) and
``rule_conditions.py`` (compiling ``when:``, applying ``then:``) read, so neither
imports the other's internals and there is no import circle between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# field name → type the conditions compare against
FIELDS: dict[str, type] = {
    "type": str,
    "category": str,
    "team": str,
    "channel": str,
    "customer_tier": str,
    "affected_service": str,
    "requester": str,
    "subject": str,
    "body": str,
    "text": str,
    "priority": int,
    "impact": int,
    "urgency": int,
    "vip": bool,
    "major_incident": bool,
    # the ticket's team right now (read from the store only when a rule uses them):
    # open tickets in its queue, and the age in hours of the oldest of them
    "team.backlog": int,
    "team.oldest_hours": float,
}
TEAM_STATE_FIELDS = frozenset({"team.backlog", "team.oldest_hours"})
# ``predicted.<field>`` (the model's label), ``.decision`` (apply|suggest|abstain) and
# ``.probability`` (0..1) for every field above and any other head of the bundle
PREDICTED_PARTS = {"decision": str, "probability": float}


def field_type(name: str) -> type | None:
    """The type a condition on ``name`` compares against, or None for an unknown field."""
    if name in FIELDS:
        return FIELDS[name]
    if not isinstance(name, str) or not name.startswith("predicted."):
        return None
    parts = name.split(".")
    if len(parts) == 2 and parts[1]:
        return FIELDS.get(parts[1], str)
    if len(parts) == 3 and parts[1] and parts[2] in PREDICTED_PARTS:
        return PREDICTED_PARTS[parts[2]]
    return None


OPERATORS = {"equals", "in", "contains_any", "matches", "gte", "lte"}
ACTIONS = {
    "set_priority",
    "raise_priority",
    "sla_policy",
    "route_to",
    "add_tags",
    "escalate",
    "stop",
    "accept_predicted",
    "assign_senior",
}
# fields ``accept_predicted`` may take from the model's suggestion
ACCEPTABLE = ("priority", "team", "category", "type", "affected_service")
Condition = Callable[[dict], bool]


@dataclass(frozen=True)
class Rule:
    name: str
    condition: Condition
    actions: dict
    line: int
    description: str = ""
