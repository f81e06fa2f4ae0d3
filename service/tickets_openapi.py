"""OpenAPI paths of the ticketing API (merged into /openapi.json by ``service.openapi``).

Identity, documented here once for every path: an ``agent`` key's name is the
agent id; an ``intake`` key (pipeline or portal) reads only with
``X-Requester`` and then sees that requester's tickets alone.
"""

from __future__ import annotations

from . import ticket_requests as shapes
from .openapi import BOOL, INT, NSTR, REF, STR, _json, _obj, _op
from triage.store.search import SORTS

from .validation import Int, Text, path_id, query_schema

NINT = {"type": ["integer", "null"]}
ANY_LIST = {"type": "array"}
AUTH = (401, 403, 503)
REQUESTER = {
    "name": "X-Requester",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 320},
    "description": "intake/portal keys: the requester acting; required to read",
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "a retry with the same key (same caller) answers the first ticket",
}
TID = path_id("ticket_id")

OPENAPI_SCHEMAS = {
    "TicketRecord": _obj(
        {
            "id": INT,
            "subject": STR,
            "body": STR,
            "channel": STR,
            "requester": NSTR,
            "status": {"enum": ["new", "assigned", "in_progress", "pending", "resolved", "closed"]},
            "ticket_type": NSTR,
            "category": NSTR,
            "priority": NINT,
            "affected_service": NSTR,
            "customer_tier": NSTR,
            "team": NSTR,
            "queue": STR,
            "assignee": NSTR,
            "resolution": NSTR,
            "tags": ANY_LIST,
            "extra": {"type": "object"},
            "escalation_level": INT,
            "created_at": STR,
            "updated_at": STR,
            "first_response_at": NSTR,
            "resolved_at": NSTR,
            "closed_at": NSTR,
        },
        ["id", "subject", "body", "channel", "status", "queue"],
    ),
    "IntakeResponse": _obj(
        {
            "ok": {"const": True},
            "ticket": REF("TicketRecord"),
            "created": BOOL,
            "open_fields": ANY_LIST,
            "duplicate_candidates": ANY_LIST,
        },
        ["ok", "ticket", "created"],
    ),
    "TicketResponse": _obj({"ok": {"const": True}, "ticket": REF("TicketRecord")}, ["ok", "ticket"]),
    "TicketList": _obj(
        {
            "ok": {"const": True},
            "tickets": {"type": "array", "items": REF("TicketRecord")},
            "total": INT,
            "total_exact": BOOL,
            "limit": INT,
            "offset": INT,
            "next_offset": {"type": ["integer", "null"]},
        },
        ["ok", "tickets"],
    ),
    "History": _obj(
        {
            "ok": {"const": True},
            "events": {
                "type": "array",
                "items": _obj({"field": STR, "old": NSTR, "new": NSTR, "actor": STR, "at": STR}),
            },
        },
        ["ok", "events"],
    ),
    "Breaches": _obj(
        {"ok": {"const": True}, "breaches": ANY_LIST, "count": INT}, ["ok", "breaches", "count"]
    ),
}


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def OPENAPI_PATHS(config: dict) -> dict:  # noqa: N802 - the name service.openapi looks for
    schema = lambda spec: spec.schema(config)  # noqa: E731 - the declarations the code checks
    agent, everyone = ["agent", "admin"], ["intake", "agent", "admin"]
    ok = lambda ref, what: {"200": _json(REF(ref), what)}  # noqa: E731
    return {
        "/v1/tickets": {
            "post": _op(
                "Open a ticket from any channel (JSON, or a raw message/rfc822 e-mail)",
                {
                    "201": _json(REF("IntakeResponse"), "created"),
                    "200": _json(REF("IntakeResponse"), "replayed or an e-mail follow-up"),
                },
                (400, 413, 415, 422) + AUTH,
                everyone,
                parameters=[REQUESTER, IDEMPOTENCY],
                requestBody=_body(schema(shapes.NEW_TICKET)),
            ),
            "get": _op(
                "Tickets the caller may see (?q= full text, ?queue=, ?status=a,b, ?team=, "
                "?assignee= (id or none), ?priority=, ?sort=, ?limit=, ?offset=)",
                ok("TicketList", "tickets, escalated and most urgent first"),
                (404, 422) + AUTH,
                everyone,
                parameters=[REQUESTER]
                + [
                    query_schema("limit", Int(1, 500), config),
                    query_schema("offset", Int(0, 10**9), config),
                    query_schema("status", Text(max_len=200), config, doc="statuses, comma-separated"),
                    query_schema("queue", Text(max_len=100), config),
                    query_schema("q", Text(max_len=500), config, doc="full text"),
                    query_schema("team", Text(max_len=100), config),
                    query_schema("assignee", Text(max_len=100), config, doc="agent id, or none"),
                    query_schema("priority", Int(1, 5), config),
                    query_schema("sort", Text(enum=tuple(sorted(SORTS))), config),
                ],
            ),
        },
        "/v1/tickets/{ticket_id}": {
            "get": _op(
                "One ticket with comments, watchers, SLA clocks and links",
                ok("TicketResponse", "the ticket"),
                (404,) + AUTH,
                everyone,
                parameters=[TID, REQUESTER],
            ),
            "patch": _op(
                "Change fields (history + feedback); assignee: id or 'auto'",
                ok("TicketResponse", "changed"),
                (400, 404, 409, 415, 422) + AUTH,
                agent,
                parameters=[TID],
                requestBody=_body(schema(shapes.TICKET_PATCH)),
            ),
        },
        "/v1/incidents/proposals": {
            "get": _op(
                "Open major-incident proposals of the burst detector (?limit=, ?offset=)",
                {"200": _json({"type": "object"}, "proposals")},
                (422,) + AUTH,
                agent,
            )
        },
        "/v1/incidents/proposals/{proposal_id}/{decision}": {
            "post": _op(
                "Accept (link the members to the parent) or decline a proposal",
                {"200": _json({"type": "object"}, "decided")},
                (404, 409) + AUTH,
                agent,
                parameters=[
                    path_id("proposal_id", "proposal id"),
                    {
                        "name": "decision",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["accept", "decline"]},
                    },
                ],
            )
        },
        "/v1/tickets/{ticket_id}/transition": {
            "post": _op(
                "Lifecycle move {to, resolution?, reason? (pending: customer|third_party), "
                "resolve_children?}",
                ok("TicketResponse", "moved"),
                (400, 404, 409, 415, 422) + AUTH,
                agent,
                parameters=[TID],
                requestBody=_body(schema(shapes.TRANSITION)),
            )
        },
        "/v1/tickets/{ticket_id}/comments": {
            "post": _op(
                "Add a follow-up {body, public?}",
                {"201": _json(REF("TicketResponse"), "added")},
                (400, 404, 415, 422) + AUTH,
                everyone,
                parameters=[TID, REQUESTER],
                requestBody=_body(schema(shapes.COMMENT)),
            )
        },
        "/v1/tickets/{ticket_id}/history": {
            "get": _op(
                "Every change: field, old, new, actor, time",
                ok("History", "oldest first"),
                (404,) + AUTH,
                agent,
                parameters=[TID],
            )
        },
        "/v1/tickets/{ticket_id}/merge": {
            "post": _op(
                "Merge this duplicate {into: parent id}",
                ok("TicketResponse", "merged"),
                (404, 409, 415, 422) + AUTH,
                agent,
                parameters=[TID],
                requestBody=_body(schema(shapes.MERGE)),
            )
        },
        "/v1/tickets/{ticket_id}/unmerge": {
            "post": _op(
                "Undo the merge of this ticket",
                ok("TicketResponse", "restored"),
                (404, 409) + AUTH,
                agent,
                parameters=[TID],
            )
        },
        "/v1/tickets/{ticket_id}/link": {
            "post": _op(
                "Link to a parent incident {parent: id} or unlink {parent: null}",
                {"200": _json({"type": "object"}, "links")},
                (404, 409, 415, 422) + AUTH,
                agent,
                parameters=[TID],
                requestBody=_body(schema(shapes.LINK)),
            )
        },
        "/v1/reports/breaches": {
            "get": _op(
                "Over-time SLA clocks (open tickets; ?all=1 includes closed)",
                ok("Breaches", "most overdue first"),
                AUTH,
                agent,
                parameters=[
                    {
                        "name": "all",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["0", "1"]},
                    }
                ],
            )
        },
    }
