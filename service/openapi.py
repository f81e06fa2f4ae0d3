"""The OpenAPI 3 document at ``/openapi.json``, for the endpoints that really exist.

Written as data next to the code (the request schema comes from the same field
declarations the validator uses), and kept honest by tests/test_openapi.py,
which validates real responses against these schemas with jsonschema. Other
areas add their paths from their blueprint's module (``OPENAPI_PATHS``), see below;
``Error`` and the helpers ``_op``/``_json``/``REF`` are theirs to reuse.
"""

from __future__ import annotations

import sys

from flask import Blueprint, Flask, current_app, jsonify

from .ticket_schema import ticket_json_schema
from .validation import Bool, Obj, Text

# the body of POST /v1/admin/reload (service/admin.py checks it with this declaration)
RELOAD = Obj(
    {
        "bundle": Text(max_len=200, required=True, doc="bundle id under the models dir"),
        "wait": Bool(doc="load before answering"),
    }
)

bp = Blueprint("openapi", __name__)


def _obj(props: dict, required: list[str] | None = None, extra: bool = True) -> dict:
    schema = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        schema["required"] = required
    return schema


REF = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
STR, NUM, BOOL, INT = {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "integer"}
NSTR = {"type": ["string", "null"]}

SCHEMAS = {
    "Error": _obj(
        {
            "ok": {"const": False},
            "error": STR,
            "status": INT,
            "errors": {
                "type": "array",
                "items": _obj({"field": STR, "message": STR, "expected": STR, "got": STR}),
            },
        },
        ["ok", "error", "errors", "status"],
    ),
    "Alternative": _obj({"label": STR, "probability": NUM}, ["label", "probability"]),
    "FieldPrediction": _obj(
        {
            "label": STR,
            "probability": NUM,
            "alternatives": {"type": "array", "items": REF("Alternative")},
            "decision": {"enum": ["apply", "suggest", "abstain"]},
            "explanation": {"type": "array", "items": _obj({"term": STR, "weight": NUM})},
            "neighbours": {
                "type": "array",
                "items": _obj({"id": STR, "subject": STR, "label": STR, "similarity": NUM}),
            },
            "derived_from": _obj({"impact": NSTR, "urgency": NSTR}),
        },
        ["label", "probability", "alternatives", "decision"],
    ),
    "Suggestion": _obj(
        {"article_id": STR, "title": STR, "score": NUM, "snippet": STR, "attribution": NSTR, "url": NSTR},
        ["article_id", "title", "score"],
    ),
    "Sla": {
        "type": ["object", "null"],
        "properties": {
            "policy": STR,
            "priority": INT,
            "tier": NSTR,
            "calendar": STR,
            "first_response_minutes": NUM,
            "resolution_minutes": NUM,
            "first_response_due": {"type": "string", "format": "date-time"},
            "resolution_due": {"type": "string", "format": "date-time"},
        },
    },
    "RulesOutcome": _obj(
        {
            "fields": {"type": "object"},
            "team": NSTR,
            "tags": {"type": "array", "items": STR},
            "escalate": BOOL,
            "fired": {"type": "array", "items": STR},
        },
        ["fields", "team", "tags", "escalate", "fired"],
    ),
    "TicketResult": _obj(
        {
            "id": NSTR,
            "fields": {"type": "object", "additionalProperties": REF("FieldPrediction")},
            "kb": {"type": "array", "items": REF("Suggestion")},
            "rules": REF("RulesOutcome"),
            "sla": REF("Sla"),
        },
        ["id", "fields", "kb", "rules", "sla"],
    ),
    "ClassifyResponse": {
        "oneOf": [
            _obj(
                {"ok": {"const": True}, "request_id": STR, "bundle_id": STR, "result": REF("TicketResult")},
                ["ok", "request_id", "bundle_id", "result"],
                False,
            ),
            _obj(
                {
                    "ok": {"const": True},
                    "request_id": STR,
                    "bundle_id": STR,
                    "results": {"type": "array", "items": REF("TicketResult")},
                },
                ["ok", "request_id", "bundle_id", "results"],
                False,
            ),
        ]
    },
    "SuggestResponse": _obj(
        {
            "ok": {"const": True},
            "request_id": STR,
            "bundle_id": STR,
            "query": STR,
            "threshold": NUM,
            "query_window": _obj({"words": INT, "truncated": BOOL}),
            "suggestions": {"type": "array", "items": REF("Suggestion")},
        },
        ["ok", "suggestions", "bundle_id"],
    ),
    "ArticleResponse": _obj(
        {
            "ok": {"const": True},
            "request_id": STR,
            "article": _obj(
                {
                    "id": STR,
                    "title": STR,
                    "body": STR,
                    "description": STR,
                    "tags": {"type": "array", "items": STR},
                    "product": STR,
                    "attribution": NSTR,
                    "url": NSTR,
                },
                ["id", "title"],
            ),
        },
        ["ok", "article"],
    ),
    "Live": _obj({"ok": BOOL, "status": STR}, ["ok"]),
    "Ready": _obj(
        {"ok": BOOL, "ready": BOOL, "loading": BOOL, "bundle_id": NSTR, "kb_articles": INT, "error": NSTR},
        ["ok", "ready"],
    ),
    "BundleInfo": _obj(
        {
            "bundle_id": STR,
            "path": STR,
            "heads": {"type": "array", "items": STR},
            "encoder": {"type": ["object", "null"]},
            "kb": {"type": "object"},
            "rules": STR,
            "loaded_at": STR,
            "load_seconds": NUM,
        },
        ["bundle_id", "path", "heads"],
    ),
    "BundleResponse": _obj(
        {"ok": {"const": True}, "request_id": STR, "bundle": REF("BundleInfo"), "status": {"type": "object"}},
        ["ok", "bundle"],
    ),
    "ReloadResponse": _obj(
        {
            "ok": {"const": True},
            "request_id": STR,
            "reloading": BOOL,
            "reloaded": BOOL,
            "previous": NSTR,
            "bundle": REF("BundleInfo"),
        },
        ["ok"],
    ),
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    words = {
        400: "malformed body (bad JSON or UTF-8)",
        401: "missing or unknown API key",
        403: "role not allowed",
        404: "not found",
        409: "conflict",
        413: "too large",
        414: "request line too long (gunicorn's limit, before the app)",
        415: "not application/json",
        422: "invalid fields",
        429: "rate limit reached (see Retry-After)",
        503: "no bundle loaded yet",
    }
    out = {str(c): _json(REF("Error"), words[c]) for c in codes}
    if "414" in out:  # gunicorn answers it before the app runs: its own small HTML page
        out["414"] = {"description": words[414], "content": {"text/html": {"schema": {"type": "string"}}}}
    return out


def _op(summary: str, ok: dict, errors: tuple, roles: list[str] | None = None, **extra) -> dict:
    if roles:  # a client that keeps presenting wrong keys is slowed down: 429 (service/limiter.py)
        errors = tuple(errors) + (429,)
    if "requestBody" in extra:  # larger than TRIAGE_MAX_BODY_BYTES; not JSON or not UTF-8
        errors = tuple(errors) + (400, 413, 415, 422)
    if extra.get("parameters"):  # a parameter outside its schema
        errors = tuple(errors) + (422,)
    if any(p.get("in") == "query" for p in extra.get("parameters") or []):
        errors = tuple(errors) + (414,)  # a query string past gunicorn's request-line limit
    errors = tuple(sorted(set(errors)))
    op = {"summary": summary, "responses": {**ok, **_errors(*errors)}, **extra}
    op["security"] = [{"bearer": []}, {"apiKey": []}] if roles else []
    if roles:
        op["description"] = f"Roles: {', '.join(roles)}."
    return op


def document(config: dict) -> dict:
    ticket = ticket_json_schema(config)
    batch = _obj(
        {
            "tickets": {
                "type": "array",
                "items": ticket,
                "minItems": 1,
                "maxItems": int(config["TRIAGE_MAX_BATCH"]),
            }
        },
        ["tickets"],
        False,
    )
    auth_errors = (401, 403, 503)
    q = [
        {
            "name": "q",
            "in": "query",
            "required": True,
            "schema": Text(max_len="TRIAGE_SUGGEST_MAX_CHARS").schema(config),
        },
        {
            "name": "k",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": int(config["TRIAGE_SUGGEST_MAX_K"])},
        },
    ]
    paths = {
        "/v1/classify": {
            "post": _op(
                "Classify one ticket or a batch: predictions, KB suggestions, rules and SLA",
                {"200": _json(REF("ClassifyResponse"), "one result or a list of results")},
                (400, 413, 415, 422) + auth_errors,
                ["intake", "agent", "admin"],
                parameters=[
                    {
                        "name": "kb",
                        "in": "query",
                        "required": False,
                        "description": "0: no KB suggestions (a TF-IDF-only bundle then "
                        "skips the encoder: the fast path)",
                        "schema": {"type": "integer", "enum": [0, 1]},
                    }
                ],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"oneOf": [REF("Ticket"), REF("TicketBatch")]}}
                    },
                },
            )
        },
        "/v1/kb/suggest": {
            "get": _op(
                "KB articles for a partial text (as the customer types); often none",
                {"200": _json(REF("SuggestResponse"), "suggestions above the relevance threshold")},
                (422,) + auth_errors,
                ["intake", "agent", "admin"],
                parameters=q,
            )
        },
        "/v1/kb/articles/{article_id}": {
            "get": _op(
                "One KB article",
                {"200": _json(REF("ArticleResponse"), "the article")},
                (404,) + auth_errors,
                ["intake", "agent", "admin"],
                parameters=[{"name": "article_id", "in": "path", "required": True, "schema": STR}],
            )
        },
        "/v1/admin/reload": {
            "post": _op(
                "Load the champion (or a named bundle) and swap atomically",
                {
                    "200": _json(REF("ReloadResponse"), "loaded (wait: true)"),
                    "202": _json(REF("ReloadResponse"), "loading in the background"),
                },
                (400, 404, 409, 415, 422) + auth_errors,
                ["admin"],
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": RELOAD.schema(config)}},
                },
            )
        },
        "/v1/admin/bundle": {
            "get": _op(
                "The bundle being served",
                {"200": _json(REF("BundleResponse"), "bundle details")},
                auth_errors,
                ["admin"],
            )
        },
        "/livez": {"get": _op("Liveness", {"200": _json(REF("Live"), "process answers")}, ())},
        "/readyz": {
            "get": _op(
                "Readiness: bundle and KB index loaded",
                {
                    "200": _json(REF("Ready"), "ready"),
                    "503": _json(REF("Ready"), "not ready (also carries the error shape)"),
                },
                (),
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "text exposition format",
                        "content": {"text/plain": {"schema": STR}},
                    }
                },
                (),
            )
        },
        "/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3")}, ())},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triage",
            "version": "1",
            "description": "ML-driven help-desk triage. Every error has the shape of Error.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                **SCHEMAS,
                "Ticket": ticket,
                "TicketBatch": batch,
                "ReloadRequest": RELOAD.schema(config),
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def with_area_paths(doc: dict, app: Flask) -> dict:
    """Merge what the app's blueprints declare: a blueprint's module may define
    ``OPENAPI_PATHS`` (a dict, or a function of the config returning one) and
    ``OPENAPI_SCHEMAS``. Read from ``app.blueprints``, so this module imports no area."""
    for blueprint in app.blueprints.values():
        module = sys.modules[blueprint.import_name]
        paths = getattr(module, "OPENAPI_PATHS", None)
        if callable(paths):
            paths = paths(app.config)
        for path, ops in (paths or {}).items():
            doc["paths"].setdefault(path, {}).update(ops)
        doc["components"]["schemas"].update(getattr(module, "OPENAPI_SCHEMAS", None) or {})
    return doc


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(with_area_paths(document(current_app.config), current_app))
