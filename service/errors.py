"""One JSON error shape for every error the service answers.

``{"ok": false, "error": "<one line>", "errors": [{"field", "message", ...}], "status": 422}``
(datasette's habit): clients need one parser, and a test checks the shape across
endpoints. Bad input is always a 4xx raised on purpose (:class:`ApiError`,
``triage.errors.TriageError`` or a werkzeug ``HTTPException``); only a genuine bug
reaches the catch-all 500, which logs the traceback and hides it from the caller.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from triage.errors import TriageError

log = logging.getLogger("service.errors")


class ApiError(Exception):
    """A request the service refuses: status, one-line message, per-field details."""

    def __init__(
        self, status: int, message: str, errors: list[dict] | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}


def field_error(
    field: str, message: str, *, expected: str | None = None, got: object = None, got_text: str | None = None
) -> dict:
    """One entry of ``errors``: which field, what was expected and what arrived.

    ``got`` is a bad value (rendered by :func:`describe`); ``got_text`` an already
    worded observation such as "20001 characters".
    """
    out: dict = {"field": field, "message": message}
    if expected is not None:
        out["expected"] = expected
        out["got"] = got_text if got_text is not None else describe(got)
    return out


def describe(value: object) -> str:
    """A short, safe rendering of a bad value (type name plus a truncated repr)."""
    kind = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}" if kind not in {"object", "array"} else kind


def error_body(status: int, message: str, errors: list[dict] | None = None) -> dict:
    return {"ok": False, "error": message, "errors": errors or [], "status": status}


def error_response(status: int, message: str, errors: list[dict] | None = None, headers: dict | None = None):
    response = jsonify(error_body(status, message, errors))
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _http_error(exc: HTTPException):
    headers = {}
    message = exc.description or exc.name
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
        allowed = ", ".join(m for m in exc.valid_methods if m not in ("HEAD", "OPTIONS"))
        message = f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    elif exc.code == 404 and request.path.startswith("/v1/"):  # the API: say where the paths are
        message = f"no API path {request.path}"
        if request.path.endswith("/"):
            message += f" (without the trailing slash: {request.path.rstrip('/')})"
        message += "; the API's paths are listed at /openapi.json"
    elif exc.code == 413:  # werkzeug's "exceeds the capacity limit" names neither limit nor size
        message = too_large_message()
    status = exc.code or 500
    return error_response(status, message, headers=headers)


def too_large_message() -> str:
    """A 413's message: the limit that applied to this request, the setting that sets it, and
    the size sent (a page form carrying files has the attachments' larger limit)."""
    limit = request.max_content_length
    if not limit:
        return "request body too large"
    setting = (
        "TRIAGE_MAX_BODY_BYTES"
        if limit == current_app.config.get("MAX_CONTENT_LENGTH")
        else "TRIAGE_ATTACHMENT_TICKET_MAX_BYTES plus 1 MiB for the form"
    )
    got = f"got {request.content_length} bytes" if request.content_length else "got more"
    return f"request body too large: at most {limit} bytes ({setting}), {got}"


def _triage_error(exc: TriageError):
    status = int(getattr(exc, "status", 400))
    return error_response(status, exc.message, [exc.to_dict()] if exc.details else [])


def _api_error(exc: ApiError):
    return error_response(exc.status, exc.message, exc.errors, exc.headers)


def _unexpected(exc: Exception):
    if isinstance(exc, HTTPException):  # Flask routes these here when no closer handler matched
        return _http_error(exc)
    rid = getattr(g, "request_id", "-")
    log.exception("unexpected error rid=%s", rid)
    return error_response(500, f"internal error; quote request id {rid} when reporting it")


def register(app: Flask) -> None:
    """Install the handlers; the most specific class wins in Flask's lookup."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(TriageError, _triage_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
