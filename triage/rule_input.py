"""One function builds what the rules see, for every path that runs them.

``POST /v1/classify`` (nothing stored), intake (a new ticket) and a change by an
agent or a customer (rules run again) all call :func:`rule_input`, so the same
ticket fires the same rules whichever way it arrives.

What the rules see:

- the ticket's known fields under the rules' names (``type``, ``category``,
  ``priority``, ``team``, ``customer_tier`` …): given by the requester, set by an
  agent, or applied by the model (decision ``apply``), because that is what the
  stored ticket holds after intake;
- for every head of the model, ``predicted.<field>`` (its label, even when the
  model only suggests or abstains), ``predicted.<field>.decision`` and
  ``predicted.<field>.probability``, so a rule can act on a suggested P1 outage
  without the model writing the field on its own;
- ``subject``, ``body`` and ``text`` (both together) for keyword rules.
"""

from __future__ import annotations

from typing import Any, Mapping

# store field name -> the rules' field name
RULE_NAMES = {
    "ticket_type": "type",
    "category": "category",
    "priority": "priority",
    "affected_service": "affected_service",
    "team": "team",
    "customer_tier": "customer_tier",
    "channel": "channel",
    "requester": "requester",
    "vip": "vip",
    "major_incident": "major_incident",
    "impact": "impact",
    "urgency": "urgency",
}
# model head -> the rules' field name (heads not listed keep their own name)
HEAD_NAMES = {
    "type": "type",
    "category": "category",
    "priority": "priority",
    "team": "team",
    "affected_service": "affected_service",
    "impact": "impact",
    "urgency": "urgency",
}


def rule_input(
    known: Mapping[str, Any],
    prediction: Mapping[str, Any] | None,
    team_state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The flat field dict the rules read (see the module doc).

    ``known`` holds the ticket's set fields under the store's names (``type`` is
    accepted for ``ticket_type``) plus ``subject`` and ``body``; ``prediction``
    is a Triager result (``{"fields": {head: {label, decision, probability}}}``)
    or None when no model is served.
    """
    fields: dict[str, Any] = {}
    for store_name, value in known.items():
        name = RULE_NAMES.get("ticket_type" if store_name == "type" else store_name)
        if name is not None and value not in (None, ""):
            fields[name] = value
    heads = (prediction or {}).get("fields") or {}
    for head, out in heads.items():
        name = HEAD_NAMES.get(head, head)
        label = out.get("label")
        fields[f"predicted.{name}"] = label
        fields[f"predicted.{name}.decision"] = str(out.get("decision") or "abstain")
        probability = out.get("probability")
        fields[f"predicted.{name}.probability"] = float(probability) if probability is not None else None
        if out.get("decision") == "apply" and label is not None and name not in fields:
            fields[name] = label  # what intake stores; a given value is never overruled
    if team_state is not None:  # the team's queue now: rules can weigh depth and backlog age
        fields["team.backlog"] = int(team_state.get("backlog") or 0)
        fields["team.oldest_hours"] = float(team_state.get("oldest_hours") or 0.0)
    subject, body = str(known.get("subject") or ""), str(known.get("body") or "")
    fields["subject"], fields["body"] = subject, body
    fields["text"] = f"{subject} {body}".strip()
    return fields


def ticket_known(row) -> dict[str, Any]:
    """The known fields of a stored ticket row (duck-typed: anything with the columns)."""
    extra = getattr(row, "extra", None) or {}
    known = {
        name: getattr(row, name, None)
        for name in (
            "subject",
            "body",
            "channel",
            "requester",
            "customer_tier",
            "ticket_type",
            "category",
            "priority",
            "affected_service",
            "team",
        )
    }
    known.update({k: extra[k] for k in ("vip", "major_incident", "impact", "urgency") if k in extra})
    return known


def with_desk_teams(
    prediction: Mapping[str, Any] | None, team_map: Mapping[str, str] | None
) -> Mapping[str, Any] | None:
    """The prediction with its team label in the desk's names (``desk.yaml`` ``team_map``).

    Rules and routing speak the desk's team names; the stored prediction keeps
    the model's own label, which is what the next training compares against.
    """
    if not prediction or not team_map:
        return prediction
    head = ((prediction.get("fields") or {}).get("team")) or None
    if head is None or head.get("label") not in team_map:
        return prediction
    fields = {**prediction["fields"], "team": {**head, "label": team_map[head["label"]]}}
    return {**prediction, "fields": fields}


def team_of(known: Mapping[str, Any], prediction: Mapping[str, Any] | None) -> str | None:
    """The team the rules will see as ``team`` (given, else applied by the model)."""
    if known.get("team") not in (None, ""):
        return str(known["team"])
    head = ((prediction or {}).get("fields") or {}).get("team") or {}
    return str(head["label"]) if head.get("decision") == "apply" and head.get("label") else None
