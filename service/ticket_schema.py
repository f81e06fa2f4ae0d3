"""The ticket a client sends, declared once: validation and the OpenAPI schema both read it.

Validation is strict and exhaustive: every problem in a request is reported in
one answer (``errors`` names the field path, what was expected and what came),
unknown fields are refused (a misspelt ``prioirty`` would otherwise be silently
ignored), and nothing malformed reaches the model, so bad input is a 4xx and
never a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import request

from triage.ticket import Channel, Ticket

from .errors import ApiError, describe, field_error
from .validation import NO_NUL, NON_BLANK, text_problem

JSON_TYPES = {"string": str, "boolean": bool, "object": dict, "integer": int}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # JSON type
    doc: str
    max_setting: str | None = None  # a TRIAGE_* setting bounding the length
    max_len: int | None = None
    enum: tuple[str, ...] | None = None
    format: str | None = None


TICKET_FIELDS: list[Field] = [
    Field("id", "string", "The caller's ticket id, echoed back.", max_len=200),
    Field("subject", "string", "Subject line.", max_setting="TRIAGE_MAX_SUBJECT_CHARS"),
    Field("body", "string", "Description / first message.", max_setting="TRIAGE_MAX_TEXT_CHARS"),
    Field("channel", "string", "Where the ticket came from.", enum=tuple(c.value for c in Channel)),
    Field("customer_tier", "string", "Customer tier, e.g. gold / standard.", max_len=50),
    Field("vip", "boolean", "Requester is a VIP (rules may raise priority)."),
    Field("affected_service", "string", "Service or configuration item affected.", max_len=200),
    Field("requester", "string", "Requester e-mail or id.", max_len=320),
    Field("major_incident", "string", "Id of a linked major incident, if any.", max_len=200),
    Field(
        "created_at",
        "string",
        "ISO 8601 time the ticket was opened (SLA clocks start here; default now, naive times are UTC).",
        max_len=64,
        format="date-time",
    ),
    Field(
        "fields",
        "object",
        'Labels already known (e.g. {"priority": "P2"}): they override predictions in the rules.',
        max_len=32,
    ),
]
BY_NAME = {f.name: f for f in TICKET_FIELDS}
GIVEN_VALUE_MAX = 200


def read_json_body() -> Any:
    """The request body as JSON: 415 for another media type, 400 for bad UTF-8 or bad JSON."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, f"expected Content-Type application/json, got {mimetype or 'none'!r}")
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            f"request body is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 4]!r})",
            [
                field_error(
                    "body",
                    "invalid UTF-8",
                    expected="UTF-8 text",
                    got=f"byte 0x{raw[exc.start]:02x} at offset {exc.start}",
                )
            ],
        )
    if not text.strip():
        raise ApiError(400, "empty request body: expected a JSON object")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def validate_ticket(raw: Any, path: str, config: dict) -> tuple[Ticket | None, dict, list[dict]]:
    """One ticket object → (Ticket, extras, errors); ``path`` prefixes field names."""
    errs: list[dict] = []
    if not isinstance(raw, dict):
        return (
            None,
            {},
            [field_error(path or "ticket", "a ticket must be a JSON object", expected="object", got=raw)],
        )
    for key in raw:
        if key not in BY_NAME:
            errs.append(
                field_error(
                    _join(path, key), "unknown field", expected="one of " + ", ".join(BY_NAME), got=key
                )
            )
    values = {}
    for spec in TICKET_FIELDS:
        if spec.name in raw and raw[spec.name] is not None:
            value, problem = _check(spec, raw[spec.name], config)
            if problem:
                errs.append(
                    field_error(_join(path, spec.name), problem[0], expected=problem[1], got_text=problem[2])
                )
            else:
                values[spec.name] = value
    if not errs and not (values.get("subject", "").strip() or values.get("body", "").strip()):
        errs.append(
            field_error(
                _join(path, "subject"),
                "a ticket needs a subject or a body",
                expected="non-empty subject or body",
                got=raw.get("subject", ""),
            )
        )
    if errs:
        return None, {}, errs
    return (
        _ticket(values),
        {"id": values.get("id"), "vip": values.get("vip"), "major_incident": values.get("major_incident")},
        [],
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(spec: Field, value: Any, config: dict):
    """(converted value, None) or (None, (message, expected, got))."""
    expected_type = JSON_TYPES[spec.type]
    if not isinstance(value, expected_type) or (spec.type != "boolean" and isinstance(value, bool)):
        return None, ("wrong type", spec.type, describe(value))
    limit = int(config[spec.max_setting]) if spec.max_setting else spec.max_len
    if limit is not None and len(value) > limit:
        unit = "characters" if spec.type == "string" else "entries"
        return None, ("too long", f"at most {limit} {unit}", f"{len(value)} {unit}")
    if spec.type == "string":
        return _check_string(spec, value)
    if spec.type == "object":
        return _check_given(value)
    return value, None


def _check_string(spec: Field, value: str):
    problem = text_problem(value)
    if problem:
        return None, (problem, "text without NUL or lone surrogates", problem.removeprefix("contains "))
    if spec.enum and value not in spec.enum:
        return None, ("not an allowed value", "one of " + ", ".join(spec.enum), describe(value))
    if spec.format == "date-time":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None, ("not a date-time", "ISO 8601, e.g. 2026-01-05T09:30:00+01:00", describe(value))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)), None
    return value, None


def _check_given(value: dict):
    for key, item in value.items():
        if len(key) > 64:
            return None, ("field name too long", "at most 64 characters", f"{len(key)} characters")
        for text in (key, item) if isinstance(item, str) else (key,):
            problem = text_problem(text)
            if problem:
                return None, (
                    f"fields.{key[:64]}: {problem}",
                    "text without NUL or lone surrogates",
                    problem.removeprefix("contains "),
                )
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            return None, (f"fields.{key}: wrong type", "string or integer", describe(item))
        if isinstance(item, str) and len(item) > GIVEN_VALUE_MAX:
            return None, (
                f"fields.{key}: too long",
                f"at most {GIVEN_VALUE_MAX} characters",
                f"{len(item)} characters",
            )
    return dict(value), None


def _ticket(values: dict) -> Ticket:
    return Ticket(
        subject=values.get("subject", ""),
        body=values.get("body", ""),
        channel=values.get("channel"),
        customer_tier=values.get("customer_tier"),
        affected_service=values.get("affected_service"),
        requester=values.get("requester"),
        created_at=values.get("created_at"),
        fields=values.get("fields", {}),
    )


def parse_classify_body(payload: Any, config: dict):
    """One ticket or ``{"tickets": [...]}`` → (is_batch, [(Ticket, extras)]); raises 4xx."""
    if not isinstance(payload, dict):
        raise ApiError(
            422,
            'expected a JSON object: one ticket or {"tickets": [...]}',
            [field_error("$", "wrong type", expected="object", got=payload)],
        )
    if "tickets" not in payload:
        ticket, extras, errs = validate_ticket(payload, "", config)
        if errs:
            raise ApiError(422, _summary(errs), errs)
        return False, [(ticket, extras)]
    return True, _parse_batch(payload, config)


def _parse_batch(payload: dict, config: dict):
    extra = [k for k in payload if k != "tickets"]
    if extra:
        raise ApiError(
            422,
            f"unknown field {extra[0]!r} next to 'tickets'",
            [field_error(k, "unknown field", expected="only 'tickets'", got=k) for k in extra],
        )
    tickets = payload["tickets"]
    if not isinstance(tickets, list) or not tickets:
        raise ApiError(
            422,
            "'tickets' must be a non-empty array",
            [field_error("tickets", "wrong type", expected="non-empty array", got=tickets)],
        )
    limit = int(config["TRIAGE_MAX_BATCH"])
    if len(tickets) > limit:
        raise ApiError(
            422,
            f"batch too large: at most {limit} tickets, got {len(tickets)}",
            [
                field_error(
                    "tickets", "too many tickets", expected=f"at most {limit}", got=f"{len(tickets)} tickets"
                )
            ],
        )
    parsed, errs = [], []
    for i, raw in enumerate(tickets):
        ticket, extras, problems = validate_ticket(raw, f"tickets[{i}]", config)
        errs += problems
        parsed.append((ticket, extras))
    if errs:
        raise ApiError(422, _summary(errs), errs)
    return parsed


def _summary(errs: list[dict]) -> str:
    first = errs[0]
    text = f"{first['field']}: {first['message']}"
    if "expected" in first:
        text += f" (expected {first['expected']}, got {first['got']})"
    return text + (f"; and {len(errs) - 1} more" if len(errs) > 1 else "")


def ticket_json_schema(config: dict) -> dict:
    """The request schema for OpenAPI, from the same declarations."""
    props = {}
    for spec in TICKET_FIELDS:
        prop: dict = {"type": [spec.type, "null"], "description": spec.doc}  # null: absent
        limit = int(config[spec.max_setting]) if spec.max_setting else spec.max_len
        if spec.type == "string" and limit:
            prop["maxLength"] = limit
        if spec.type == "string" and not spec.enum and not spec.format:
            prop["pattern"] = NO_NUL
        if spec.type == "object":
            prop["maxProperties"] = limit
            prop["propertyNames"] = {"maxLength": 64, "pattern": NO_NUL}
            prop["additionalProperties"] = {
                "anyOf": [
                    {"type": "string", "maxLength": GIVEN_VALUE_MAX, "pattern": NO_NUL},
                    {"type": "integer"},
                ]
            }
        if spec.enum:
            prop["enum"] = list(spec.enum)
        if spec.format:
            prop["format"] = spec.format
        props[spec.name] = prop
    # a ticket needs a subject or a body with something besides white space
    need = [
        {"required": [k], "properties": {k: {"type": "string", "pattern": NON_BLANK}}}
        for k in ("subject", "body")
    ]
    return {"type": "object", "properties": props, "additionalProperties": False, "anyOf": need}


__all__ = ["read_json_body", "parse_classify_body", "ticket_json_schema", "TICKET_FIELDS", "describe"]
