"""Admin endpoints: which bundle is served, and swapping to a new champion without downtime.

``POST /v1/admin/reload`` loads in the background and answers 202 at once; the
swap is one reference assignment, so requests already running finish on the old
bundle. Under gunicorn the request reaches one worker only, so the state also
writes a reload token to ``TRIAGE_RUN_DIR`` that the sibling workers watch.
``{"wait": true}`` loads before answering (scripts and tests want the outcome).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from .auth import require_role
from .errors import ApiError
from .state import resolve_bundle
from .ticket_schema import read_json_body
from .openapi import RELOAD
from .validation import validate

bp = Blueprint("admin", __name__)


@bp.post("/v1/admin/reload")
@require_role("admin")
def reload():
    options = _reload_options()
    state = current_app.extensions["triage.state"]
    if options.get("bundle"):
        resolve_bundle(state.config, options["bundle"])  # 422 now, not in a background thread
    previous = state.current.bundle_id if state.current else None
    if options.get("wait"):
        if state.loading:
            raise ApiError(409, "a reload is already running; try again when it finished")
        state.broadcast(options.get("bundle"))
        new = state.load(options.get("bundle"))
        return jsonify(
            ok=True, request_id=g.request_id, reloaded=True, previous=previous, bundle=new.describe()
        )
    if not state.request_reload_everywhere(options.get("bundle")):
        raise ApiError(409, "a reload is already running; try again when it finished")
    return jsonify(ok=True, request_id=g.request_id, reloading=True, previous=previous), 202


def _reload_options() -> dict:
    """An optional JSON body ``{"bundle": id, "wait": bool}``; an empty body means defaults."""
    if not request.get_data(cache=True).strip():
        return {}
    return validate(RELOAD, read_json_body(), current_app.config)


@bp.get("/v1/admin/bundle")
@require_role("admin")
def bundle():
    state = current_app.extensions["triage.state"]
    loaded = state.snapshot()
    return jsonify(ok=True, request_id=g.request_id, bundle=loaded.describe(), status=state.status())
