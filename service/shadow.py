"""Shadow mode in the service: ``TRIAGE_SHADOW_BUNDLE`` runs a challenger beside the champion.

Wiring: one line in ``service.app.BLUEPRINTS`` (``"service.shadow:bp"``). When the setting
is empty nothing happens. When it names a bundle (a folder under the models dir, or a
path), every ``POST /v1/tickets`` that creates a ticket and every ``POST /v1/classify`` is
handed, after the champion's response is built, to a background queue that runs the
challenger on the same tickets and stores its answers in ``shadow_predictions`` (with the
champion's label of the same moment). Responses are never changed and never wait.

``GET /v1/admin/shadow`` (admin) reports, per challenger and head, agreement with the
champion and, on tickets that agents have labelled, the accuracy of each.

The setting is read from the app config (``test_config``) or the environment; it is not
declared in ``service/settings.py`` (another area's file) — see docs/SETTINGS.md there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Blueprint, Flask, current_app, g, jsonify, request

from triage.shadow import ShadowJob, ShadowQueue, ShadowRunner
from triage.ticket import Ticket

from .auth import require_role
from .store import get_store

bp = Blueprint("shadow", __name__)
log = logging.getLogger("service.shadow")
SETTING = "TRIAGE_SHADOW_BUNDLE"
EXTENSION = "triage.shadow"

OPENAPI_PATHS = {
    "/v1/admin/shadow": {
        "get": {
            "summary": "Shadow mode: the challenger's agreement with the champion and with agents' labels",
            "description": "Roles: admin.",
            "security": [{"bearer": []}, {"apiKey": []}],
            "responses": {
                "200": {
                    "description": "status of the shadow queue and the agreement report",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "ok": {"type": "boolean"},
                                    "enabled": {"type": "boolean"},
                                    "status": {"type": ["object", "null"]},
                                    "report": {"type": "object"},
                                },
                                "required": ["ok", "enabled"],
                            }
                        }
                    },
                },
                **{
                    str(c): {
                        "description": d,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                    for c, d in ((401, "missing or unknown API key"), (403, "role not allowed"))
                },
            },
        }
    }
}


def shadow_bundle_path(app: Flask) -> Path | None:
    """The configured challenger: a bundle id under the models dir, or a folder path."""
    value = app.config.get(SETTING) or os.environ.get(SETTING) or ""
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute() and not path.exists():
        path = Path(app.config.get("TRIAGE_MODELS_DIR") or "models") / value
    from .state import trusted_bundle

    return trusted_bundle(app.config, path)  # a challenger is code too: same places only


def init_app(app: Flask) -> None:
    """Called by ``create_app``: start the challenger's queue when one is configured."""
    path = shadow_bundle_path(app)
    if path is None:
        return
    runner = ShadowRunner.from_bundle(path, signing_key=app.config.get("TRIAGE_BUNDLE_SIGNING_KEY"))
    app.extensions[EXTENSION] = ShadowQueue(runner, _sink(app))
    log.info("shadow mode: challenger %s runs beside the champion (never applied)", path)


def _sink(app: Flask):
    """Store a job's results; runs on the shadow thread, hence its own app context."""

    def sink(job: ShadowJob, results: list[dict]) -> None:
        from triage.store import shadow as shadow_store

        with app.app_context():
            with get_store().session() as session:
                for tid, champ, res in zip(job.ticket_ids, job.champion, results):
                    shadow_store.record(session, res, champ, ticket_id=tid, source=job.source)

    return sink


@bp.after_app_request
def _after(response):
    queue = current_app.extensions.get(EXTENSION)
    if queue is None or request.method != "POST":
        return response
    try:
        if request.path == "/v1/tickets" and response.status_code == 201:
            _submit_ticket(queue, response.get_json(silent=True) or {})
        elif request.path == "/v1/classify" and response.status_code == 200:
            _submit_classify(queue, response.get_json(silent=True) or {})
    except Exception:  # noqa: BLE001 - shadow mode never breaks a response
        log.exception("shadow submit failed")
    return response


def _submit_ticket(queue: ShadowQueue, body: dict) -> None:
    t = body.get("ticket") or {}
    if not t.get("id"):
        return
    ticket = Ticket(
        subject=t.get("subject") or "",
        body=t.get("body") or "",
        channel=t.get("channel"),
        customer_tier=t.get("customer_tier"),
        affected_service=t.get("affected_service"),
        requester=t.get("requester"),
    )
    queue.submit(ShadowJob([ticket], [body.get("prediction")], [int(t["id"])], "ticket"))


def _submit_classify(queue: ShadowQueue, body: dict) -> None:
    from .ticket_schema import parse_classify_body

    _, items = parse_classify_body(request.get_json(silent=True), current_app.config)
    results = body.get("results") or ([body["result"]] if body.get("result") else [])
    champion = [{"fields": r.get("fields"), "bundle_id": body.get("bundle_id")} for r in results]
    queue.submit(ShadowJob([t for t, _ in items], champion, [None] * len(items), "classify"))


@bp.get("/v1/admin/shadow")
@require_role("admin")
def report():
    from triage.store import shadow as shadow_store

    queue = current_app.extensions.get(EXTENSION)
    with get_store().session() as session:
        data = shadow_store.report(session, request.args.get("bundle") or None)
    return jsonify(
        ok=True,
        request_id=g.get("request_id"),
        enabled=queue is not None,
        status=queue.status() if queue is not None else None,
        report=data,
    )
