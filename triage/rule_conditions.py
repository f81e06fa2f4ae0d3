"""Conditions and actions of the rules engine: parsed once, validated with line numbers.

Kept apart from ``rules.py`` so each stays small: this module compiles the
``when:`` trees into closures (``all`` / ``any`` / ``not`` over leaf tests) and
applies the ``then:`` actions. Conditions see the fields as they are *after*
the earlier rules' actions.
"""

from __future__ import annotations

import re

from .configfile import LMap, line_of
from .errors import InputError
from .rule_vocabulary import ACCEPTABLE, ACTIONS, FIELDS, OPERATORS, Rule, field_type

RULE_KEYS = {"name", "description", "enabled", "when", "then"}


def _text_of(state: dict) -> str:
    """Keyword conditions read subject, body and any free text together."""
    return _texts(state)[0]


_TEXTS: tuple = (None, None, None, ("", ""))  # the last state's texts and what they gave


def _texts(state: dict) -> tuple[str, str]:
    """The joined lower-case text, and the same with its whitespace squeezed (what keyword
    and pattern conditions search). Every text rule reads it, for every ticket: it is worked
    out once per ticket, remembered for the last strings seen (identical strings give
    identical texts, whichever thread asks)."""
    global _TEXTS
    parts = (state.get("subject"), state.get("body"), state.get("text"))
    last = _TEXTS
    if last[0] is parts[0] and last[1] is parts[1] and last[2] is parts[2]:
        return last[3]
    joined = " ".join(str(v) for v in parts if v).lower()
    out = (joined, " ".join(joined.split()))
    if all(v is None or isinstance(v, str) for v in parts):  # immutable: safe to remember
        _TEXTS = (*parts, out)
    return out


def _get(state: dict, name: str):
    return _text_of(state) if name == "text" else state.get(name)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fold(v):
    return v.casefold() if isinstance(v, str) else v


def _check_value(p, fname: str, op: str, value, line: int):
    """The value a leaf compares with must fit the field's type and the operator."""
    ftype = field_type(fname)
    items = value if op in ("in", "contains_any") else [value]
    if op in ("in", "contains_any"):
        if not isinstance(value, list) or not value:
            p.fail(f"{op}: expected a non-empty list, got {value!r}", line)
    if op in ("contains_any", "matches") and ftype is not str:
        p.fail(f"{op} works on text fields, not on {fname} ({ftype.__name__})", line)
    if op in ("gte", "lte") and ftype not in (int, float):
        p.fail(
            f"{op} works on numeric fields (priority, impact, urgency, team.backlog, "
            f"team.oldest_hours, predicted.*.probability), not on {fname}",
            line,
        )
    for v in items:
        ok = (
            isinstance(v, ftype) and not isinstance(v, bool)
            if ftype in (int, float)
            else isinstance(v, ftype)
        )
        if ftype is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            p.fail(f"{fname} {op}: expected {ftype.__name__} values, got {v!r}", line)
        if fname in ("priority", "predicted.priority"):
            p.priority(v, line, "priority")


def _leaf(p, node: LMap, line: int):
    fname = node.get("field")
    if field_type(fname) is None:
        p.fail(
            f"unknown field {fname!r} (expected one of {sorted(FIELDS)}, or predicted.<field> "
            "with optional .decision / .probability)",
            line_of(node, "field", line),
        )
    getattr(p, "used_fields", set()).add(fname)
    ops = [k for k in node if k != "field"]
    for op in ops:
        if op not in OPERATORS:
            p.fail(f"unknown operator {op!r} (expected one of {sorted(OPERATORS)})", line_of(node, op, line))
    if len(ops) != 1:
        p.fail(f"a condition needs exactly one operator, got {ops}", line)
    op = ops[0]
    value, vline = node[op], line_of(node, op, line)
    _check_value(p, fname, op, value, vline)
    if op == "equals":
        return lambda s: _fold(_get(s, fname)) == _fold(value)
    if op == "in":
        folded = {_fold(v) for v in value}
        return lambda s: _fold(_get(s, fname)) in folded
    if op == "gte":
        return lambda s: _number(_get(s, fname)) and _get(s, fname) >= value
    if op == "lte":
        return lambda s: _number(_get(s, fname)) and _get(s, fname) <= value
    if op == "contains_any":
        return _contains_any(fname, value)
    try:
        rx = re.compile(value, re.I)
    except re.error as e:
        p.fail(f"matches: bad regular expression: {e}", vline)
    if fname == "text":
        return lambda s: bool(rx.search(_texts(s)[1]))
    return lambda s: bool(rx.search(" ".join(str(_get(s, fname) or "").split())))


def _contains_any(fname: str, value: list):
    """Any of the phrases as whole words (no word character on either side), in the field's
    lower-case text with its whitespace squeezed.

    The whole-word pattern starts with a look-behind, so the regex engine tries it at every
    position of the text (3.4-4.7 us per rule on a ticket). It can only match where one of
    the phrases occurs as a substring, so a substring test first spares the search on the
    many tickets holding none (default rules, real intake texts: 3.6 -> 2.4 us with 11
    phrases, 3.4 -> 0.9 with 4): the same answer for every text."""
    phrases = [" ".join(w.lower().split()) for w in value]
    rx = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, phrases))})(?!\w)")

    def found(text: str) -> bool:
        return any(map(text.__contains__, phrases)) and rx.search(text) is not None

    if fname == "text":
        return lambda s: found(_texts(s)[1])
    return lambda s: found(" ".join(str(_get(s, fname) or "").split()))


def compile_condition(p, node, line: int):
    """``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}`` or a leaf ``{field, <op>}``."""
    node = p.mapping(node, line, "condition")
    combos = [k for k in ("all", "any", "not") if k in node]
    if not combos:
        if "field" not in node:
            p.fail(f"a condition needs 'field' or one of all/any/not, got keys {sorted(node)}", line)
        return _leaf(p, node, line)
    if len(node) != 1:
        p.fail(f"{combos[0]} must stand alone in its mapping, got keys {sorted(node)}", line)
    key = combos[0]
    kline = line_of(node, key, line)
    if key == "not":
        inner = compile_condition(p, node["not"], kline)
        return lambda s: not inner(s)
    items = p.seq(node[key], kline, key)
    if not items:
        p.fail(f"{key}: expected at least one condition", kline)
    parts = [compile_condition(p, c, line_of(items, i, kline)) for i, c in enumerate(items)]
    return (lambda s: all(c(s) for c in parts)) if key == "all" else (lambda s: any(c(s) for c in parts))


def _check_actions(p, then: LMap, line: int, policies: set[str], teams) -> dict:
    then = p.mapping(then, line, "then", ACTIONS)
    if not then:
        p.fail("then: expected at least one action", line)
    out = {}
    for key, value in then.items():
        vline = line_of(then, key, line)
        if key in ("set_priority", "raise_priority"):
            out[key] = p.priority(value, vline, key)
        elif key == "sla_policy":
            if value not in policies:
                p.fail(f"sla_policy: unknown SLA policy {value!r} (declared: {sorted(policies)})", vline)
            out[key] = value
        elif key == "route_to":
            out[key] = p.text(value, vline, "route_to")
            if teams is not None and value not in teams:
                p.fail(f"route_to: unknown team {value!r} (declared: {teams})", vline)
        elif key == "accept_predicted":
            names = [value] if isinstance(value, str) else p.seq(value, vline, key)
            for n in names:
                if n not in ACCEPTABLE:
                    p.fail(f"accept_predicted: expected fields among {list(ACCEPTABLE)}, got {n!r}", vline)
            out[key] = list(names)
        elif key == "add_tags":
            tags = [value] if isinstance(value, str) else p.seq(value, vline, "add_tags")
            out[key] = [p.text(t, vline, "tag") for t in tags]
        elif not isinstance(value, bool):  # escalate, stop
            p.fail(f"{key}: expected true or false, got {value!r}", vline)
        else:
            out[key] = value
    return out


def parse_rules(p, doc: LMap, policies: set[str], teams) -> list[Rule]:
    rows = p.seq(doc.get("rules", []), line_of(doc, "rules"), "rules")
    out, names = [], set()
    for i, row in enumerate(rows):
        line = line_of(rows, i)
        row = p.mapping(row, line, "rule", RULE_KEYS)
        name = p.text(row.get("name"), line, "rule name")
        if name in names:
            p.fail(f"duplicate rule name {name!r}", line_of(row, "name", line))
        names.add(name)
        for key in ("when", "then"):
            if key not in row:
                p.fail(f"rule {name}: missing {key!r}", line)
        enabled = row.get("enabled", True)
        if not isinstance(enabled, bool):
            p.fail(f"enabled: expected true or false, got {enabled!r}", line_of(row, "enabled", line))
        cond = compile_condition(p, row["when"], line_of(row, "when", line))
        actions = _check_actions(p, row["then"], line_of(row, "then", line), policies, teams)
        if enabled:
            out.append(Rule(name, cond, actions, line, str(row.get("description") or "")))
    return out


def _priority(value, default: int) -> int:
    """1-5 from ``2``, ``"2"`` or ``"P2"`` (ITIL: 5 = planning); anything else is the caller's mistake."""
    if value is None or value == "":
        return default
    text = str(value).strip().upper().removeprefix("P")
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 5:
        raise InputError("bad priority", column="priority", expected="1-5 or P1-P5", got=value)
    return int(text)


def prepare_fields(fields: dict, default_priority: int) -> dict:
    """A copy of the ticket fields with priority, vip and major_incident in canonical form."""
    state = dict(fields)
    state["priority"] = _priority(state.get("priority"), default_priority)
    if state.get("predicted.priority") is not None:  # "P1" -> 1; an odd label compares as nothing
        try:
            state["predicted.priority"] = _priority(state["predicted.priority"], default_priority)
        except InputError:
            state["predicted.priority"] = None
    state["vip"] = bool(state.get("vip"))
    state["major_incident"] = bool(state.get("major_incident"))
    for key in ("impact", "urgency"):
        if isinstance(state.get(key), str) and state[key].isdigit():
            state[key] = int(state[key])
    return state


def apply_actions(actions: dict, state: dict, out) -> str | None:
    """Mutate the working fields and outcome; return the SLA policy the rule chose, if any."""
    if "set_priority" in actions:
        state["priority"] = actions["set_priority"]
    if "raise_priority" in actions:  # raise = more urgent = a smaller number; never lowers
        state["priority"] = min(state["priority"], actions["raise_priority"])
    for name in actions.get("accept_predicted", []):  # the suggestion becomes the value
        value = state.get(f"predicted.{name}")
        if state.get(f"predicted.{name}.decision") == "abstain":
            # the model itself declines to stand behind this label: a rule taking it would route
            # on a guess (a 0.06 team label sent a VPN outage to HR) instead of leaving it to people
            value = None
        if (
            value is not None
            and state.get(name) in (None, "")
            or (name == "priority" and value is not None and value < state["priority"])
        ):
            state[name] = value
            if name not in out.accepted:
                out.accepted.append(name)
    if "route_to" in actions:
        state["team"] = actions["route_to"]
    for tag in actions.get("add_tags", []):
        if tag not in out.tags:
            out.tags.append(tag)
    if actions.get("escalate"):
        out.escalate = True
    if actions.get("assign_senior"):
        out.senior = True
    return actions.get("sla_policy")
