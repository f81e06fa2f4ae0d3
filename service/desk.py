"""The desk (teams, agents, queues) for admins: JSON API, an admin page, the startup check.

The same store functions as ``triage desk apply`` make every change, so an edit
here is diffed and recorded (``desk_changes``: who, what, from where) exactly
like a file apply. Only ``admin`` keys and admin sign-ins may change the desk.

At load (``state.build_loaded`` and ``triage serve``'s prepare step) the desk
file named by ``TRIAGE_DESK_PATH`` is read and every team the rules route to,
and every class of the bundle's team head, must be a desk team (or be mapped
under ``team_map``): otherwise the service does not become ready, and the
error lists each unknown name with its file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, flash, g, jsonify, redirect, render_template, request, url_for

from triage.configfile import LMap
from triage.desk import Desk, check_names, load_desk
from triage.desk.spec import _agent, _Reader
from triage.errors import ConfigError
from triage.store import desk as store_desk

from .auth import require_role
from .errors import ApiError, field_error
from .pages_security import add_nav, login_required, register_page_errors
from .ticket_schema import read_json_body
from .validation import ONE_LINE_ADDRESS, Bool, Int, List, Obj, Text, int_arg, validate

# The desk API's bodies, declared once (checked here, documented in /openapi.json); the
# desk file's own rules (teams must exist, ...) still apply after these.
DESK_NAME = Text(max_len=100, required=True)
ADDRESS = "an e-mail address on one line (with an @, no line break or control character)"
AGENT_BODY = Obj(
    {
        "name": Text(max_len=200),
        "email": Text(max_len=320, pattern=ONE_LINE_ADDRESS, form=ADDRESS, nullable=True),
        "teams": List(Text(max_len=100, required=True), max_items=50),
        "skills": List(Text(max_len=100, required=True), max_items=50),
        "capacity": Int(0, 1000),
        "seniority": Text(enum=("junior", "regular", "senior", "lead")),
        "available": Bool(),
    }
)
TEAM_BODY = Obj(
    {
        "calendar": Text(max_len=100, required=True, nullable=True),
        "escalation_contacts": List(Text(max_len=320, pattern=ONE_LINE_ADDRESS, form=ADDRESS), max_items=20),
        "description": Text(max_len=2000),
    }
)

bp = Blueprint("desk", __name__)  # the admin page (HTML errors)
register_page_errors(bp)
api = Blueprint("desk_api", __name__)  # the JSON API (JSON errors)
bp.record_once(lambda s: add_nav(s.app, "Desk", "desk.desk_page", ("admin",)))

_CACHE: dict[str, tuple[float, Desk]] = {}


# ----------------------------------------------------------------- startup check
def served_desk(config) -> Desk | None:
    """The desk file of ``TRIAGE_DESK_PATH`` (re-read when it changes), or None."""
    path = config.get("TRIAGE_DESK_PATH") or ""
    if not path:
        return None
    mtime = Path(path).stat().st_mtime if Path(path).exists() else -1.0
    cached = _CACHE.get(path)
    if cached is None or cached[0] != mtime:
        _CACHE[path] = (mtime, load_desk(path))
    return _CACHE[path][1]


def check_desk(config, rules, bundle_path: str | Path | None) -> None:
    """Raise ConfigError naming unknown teams (rules file:line, bundle manifest)."""
    desk = served_desk(config)
    if desk is None:
        return
    labels, manifest = (), "bundle"
    if bundle_path is not None and (Path(bundle_path) / "manifest.json").is_file():
        manifest = str(Path(bundle_path) / "manifest.json")
        data = json.loads(Path(manifest).read_text(encoding="utf-8"))
        head = (data.get("heads") or {}).get("team") or {}
        labels = [str(c) for c in head.get("labels") or head.get("classes") or []]
    check_names(desk, rules, labels, manifest)


def team_map(config) -> dict[str, str]:
    """Bundle team label -> desk team, for intake's routing."""
    desk = served_desk(config)
    return dict(desk.team_map) if desk is not None else {}


# ----------------------------------------------------------------- API
def _store():
    from .store import get_store

    return get_store()


def _actor() -> str:
    key = g.get("api_key")
    if key is not None:
        return key.name
    user = g.get("user") or {}
    return user.get("id") or "dev"


@api.get("/v1/admin/desk")
@require_role("admin")
def get_desk():
    with _store().session(readonly=True) as s:
        return jsonify(ok=True, request_id=g.request_id, desk=store_desk.current(s))


@api.get("/v1/admin/desk/changes")
@require_role("admin")
def get_changes():
    limit, offset = _paging()
    with _store().session(readonly=True) as s:
        rows = store_desk.changes_log(s, limit=limit, offset=offset)
    return jsonify(ok=True, request_id=g.request_id, changes=rows, limit=limit, offset=offset)


@api.put("/v1/admin/desk/agents/<agent_id>")
@require_role("admin")
def put_agent(agent_id: str):
    validate(DESK_NAME, agent_id, current_app.config, "agent id")
    body = validate(AGENT_BODY, read_json_body(), current_app.config)
    with _store().session() as s:
        spec = agent_spec(s, agent_id, body)
        changes = store_desk.put_agent(s, spec, actor=_actor(), source="api")
        desk = store_desk.current(s)["agents"].get(agent_id)
    return jsonify(ok=True, request_id=g.request_id, agent=desk, changes=[c.to_dict() for c in changes])


@api.put("/v1/admin/desk/teams/<name>")
@require_role("admin")
def put_team(name: str):
    from triage.desk import TeamSpec

    validate(DESK_NAME, name, current_app.config, "team name")
    body = validate(TEAM_BODY, read_json_body(), current_app.config)
    allowed = {"calendar": (str, type(None)), "escalation_contacts": list, "description": str}
    errors = [
        field_error(k, "unknown field", expected=", ".join(allowed), got=k) for k in body if k not in allowed
    ]
    errors += [
        field_error(k, "wrong type", expected=str(allowed[k]), got=v)
        for k, v in body.items()
        if k in allowed and not isinstance(v, allowed[k])
    ]
    contacts = body.get("escalation_contacts") or []
    errors += [
        field_error("escalation_contacts", "not an address", expected="e-mail address", got=c)
        for c in contacts
        if not isinstance(c, str) or "@" not in c
    ]
    if errors:
        raise ApiError(422, f"{errors[0]['field']}: {errors[0]['message']}", errors)
    rules = getattr(getattr(current_app.extensions.get("triage.state"), "current", None), "rules", None)
    if body.get("calendar") and rules is not None and body["calendar"] not in rules.calendars:
        raise ApiError(
            422,
            "calendar: unknown calendar",
            [
                field_error(
                    "calendar",
                    "unknown calendar",
                    expected=f"one of {sorted(rules.calendars)}",
                    got=body["calendar"],
                )
            ],
        )
    spec = TeamSpec(name, body.get("calendar"), tuple(contacts), body.get("description") or "")
    with _store().session() as s:
        changes = store_desk.put_team(s, spec, actor=_actor(), source="api")
        team = store_desk.current(s)["teams"].get(name)
    return jsonify(ok=True, request_id=g.request_id, team=team, changes=[c.to_dict() for c in changes])


def agent_spec(session, agent_id: str, body: dict[str, Any]):
    """Validate an agent edit with the desk file's own rules; merged over the stored agent."""
    stored = store_desk.current(session)
    row = LMap({"id": agent_id, **(stored["agents"].get(agent_id) or {}), **body})
    row.line, row.lines = 1, {}
    desk = Desk(teams={t: None for t in stored["teams"]})  # names are all _agent reads
    try:
        return _agent(_Reader("request"), row, 1, desk)
    except ConfigError as exc:
        message = exc.message.removeprefix("request:1: ")
        raise ApiError(
            422, message, [field_error("body", message, expected="a valid agent", got=body)]
        ) from None


def _object() -> dict:
    body = read_json_body()
    if not isinstance(body, dict):
        raise ApiError(
            422, "expected a JSON object", [field_error("$", "wrong type", expected="object", got=body)]
        )
    return body


def _paging() -> tuple[int, int]:
    return (int_arg(request.args, "limit", 100, 1, 500), int_arg(request.args, "offset", 0, 0, 10**9))


# ----------------------------------------------------------------- admin page
@bp.get("/admin/desk")
@login_required("admin")
def desk_page():
    with _store().session(readonly=True) as s:
        desk = store_desk.current(s)
        changes = store_desk.changes_log(s, limit=30)
    return render_template(
        "admin/desk.html", desk=desk, changes=changes, seniorities=["junior", "regular", "senior", "lead"]
    )


@bp.post("/admin/desk/agents/<agent_id>")
@login_required("admin")
def desk_agent_form(agent_id: str):
    body: dict[str, Any] = {"available": request.form.get("available") == "1"}
    if request.form.get("capacity", "").strip():
        try:
            body["capacity"] = int(request.form["capacity"])
        except ValueError:
            flash("Capacity must be a whole number.", "error")
            return redirect(url_for("desk.desk_page"))
    if request.form.get("seniority"):
        body["seniority"] = request.form["seniority"]
    try:
        with _store().session() as s:
            spec = agent_spec(s, agent_id, body)
            changes = store_desk.put_agent(s, spec, actor=g.user["id"], source="admin page")
    except ApiError as exc:
        flash(exc.message, "error")
        return redirect(url_for("desk.desk_page"))
    flash(f"{agent_id}: {len(changes)} change(s) saved." if changes else f"{agent_id}: no change.", "ok")
    return redirect(url_for("desk.desk_page"))


def OPENAPI_PATHS(config: dict) -> dict:  # noqa: N802 - the name service.openapi looks for
    """The desk API, from the same declarations the handlers check (service/validation.py)."""
    from .openapi import _json, _op
    from .validation import Int, query_schema

    body = lambda spec: {  # noqa: E731
        "required": True,
        "content": {"application/json": {"schema": spec.schema(config)}},
    }
    name = lambda n: {  # noqa: E731
        "name": n,
        "in": "path",
        "required": True,
        "schema": DESK_NAME.schema(config),
    }
    ok = lambda what: {  # noqa: E731
        "200": _json(
            {
                "type": "object",
                "properties": {"ok": {"const": True}},
                "required": ["ok"],
            },
            what,
        )
    }
    auth = (401, 403, 503)
    return {
        "/v1/admin/desk": {
            "get": _op("The active teams, agents and queues", ok("the desk"), auth, ["admin"])
        },
        "/v1/admin/desk/changes": {
            "get": _op(
                "Who changed what in the desk, newest first",
                ok("changes"),
                (422,) + auth,
                ["admin"],
                parameters=[
                    query_schema("limit", Int(1, 500), config),
                    query_schema("offset", Int(0, 10**9), config),
                ],
            )
        },
        "/v1/admin/desk/agents/{agent_id}": {
            "put": _op(
                "Create or update one agent (fields of desk.yaml; teams must exist; recorded)",
                ok("the agent and the changes"),
                (400, 415, 422) + auth,
                ["admin"],
                parameters=[name("agent_id")],
                requestBody=body(AGENT_BODY),
            )
        },
        "/v1/admin/desk/teams/{name}": {
            "put": _op(
                "Create or update one team (calendar, escalation_contacts, description)",
                ok("the team and the changes"),
                (400, 415, 422) + auth,
                ["admin"],
                parameters=[name("name")],
                requestBody=body(TEAM_BODY),
            )
        },
    }
