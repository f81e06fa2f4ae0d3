"""Admin API for webhooks: list, add, disable, test (``/v1/admin/webhooks``).

Secrets are write-only: given (or made) when a webhook is added, answered that
once, never listed. A URL must be http(s); where it resolves is checked at each
delivery and test (``triage/egress.py``, allow-list ``TRIAGE_WEBHOOK_ALLOW``).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from triage import egress
from triage.store import webhooks

from .auth import require_role
from .openapi import BOOL, INT, REF, STR, _json, _obj, _op
from .ticket_schema import read_json_body
from .store import get_store
from .validation import NO_NEWLINE, List, Obj, Text, path_id, validate

bp = Blueprint("webhooks_api", __name__)

PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
NEW_WEBHOOK = Obj(
    {
        "url": Text(
            max_len=egress.MAX_URL,
            required=True,
            doc="http:// or https:// URL",
            pattern=f"^{NO_NEWLINE}" + r"https?://[A-Za-z0-9.-]+(:" + PORT + r")?(/[!-~]*)?$",
        ),
        "secret": Text(
            max_len=200, required=True, doc="HMAC key the receiver verifies with; made for you when left out"
        ),
        "events": List(
            Text(max_len=100, required=True),
            max_items=20,
            doc="event names to send; empty or left out: every event",
        ),
    },
    required=("url",),
)
ADMIN = ("admin",)


def _allow() -> egress.AllowList:
    return egress.AllowList.parse(current_app.config.get("TRIAGE_WEBHOOK_ALLOW") or "")


@bp.get("/v1/admin/webhooks")
@require_role(*ADMIN)
def list_webhooks():
    with get_store().session(readonly=True) as session:
        return jsonify(ok=True, webhooks=webhooks.listing(session))


@bp.post("/v1/admin/webhooks")
@require_role(*ADMIN)
def add_webhook():
    body = validate(NEW_WEBHOOK, read_json_body(), current_app.config)
    with get_store().session() as session:
        hook = webhooks.register(session, body["url"], body.get("secret"), body.get("events"))
        out = {"ok": True, "webhook": webhooks.describe(session, hook), "secret": hook.secret}
    return jsonify(out), 201


@bp.post("/v1/admin/webhooks/<id:webhook_id>/disable")
@require_role(*ADMIN)
def disable_webhook(webhook_id: int):
    with get_store().session() as session:
        hook = webhooks.disable(session, webhook_id)
        out = {"ok": True, "webhook": webhooks.describe(session, hook)}
    return jsonify(out)


@bp.post("/v1/admin/webhooks/<id:webhook_id>/test")
@require_role(*ADMIN)
def test_webhook(webhook_id: int):
    """Send one signed ``webhook.test`` now; 200 with the outcome (the receiver may fail)."""
    with get_store().session(readonly=True) as session:
        outcome = webhooks.send_test(session, webhook_id, allow=_allow())
    return jsonify(ok=True, delivery=outcome)


OPENAPI_SCHEMAS = {
    "Webhook": _obj(
        {
            "id": INT,
            "url": STR,
            "events": {"type": "array", "items": STR},
            "active": BOOL,
            "delivered": INT,
            "pending": INT,
            "failed": INT,
        },
        ["id", "url", "events", "active"],
    ),
    "WebhookResponse": _obj(
        {"ok": {"const": True}, "webhook": REF("Webhook"), "secret": STR}, ["ok", "webhook"]
    ),
    "WebhookList": _obj(
        {"ok": {"const": True}, "webhooks": {"type": "array", "items": REF("Webhook")}}, ["ok", "webhooks"]
    ),
    "WebhookTest": _obj(
        {
            "ok": {"const": True},
            "delivery": _obj(
                {"ok": BOOL, "status": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]}},
                ["ok", "status", "error"],
            ),
        },
        ["ok", "delivery"],
    ),
}
AUTH = (401, 403, 503)


def OPENAPI_PATHS(config: dict) -> dict:  # noqa: N802 - the name service.openapi looks for
    hid = path_id("webhook_id", "webhook id")
    return {
        "/v1/admin/webhooks": {
            "get": _op(
                "Webhooks (secrets are never listed)",
                {"200": _json(REF("WebhookList"), "every webhook")},
                AUTH,
                ["admin"],
            ),
            "post": _op(
                "Add a webhook {url, secret?, events?}; the secret is answered once",
                {"201": _json(REF("WebhookResponse"), "added")},
                (400, 413, 415, 422) + AUTH,
                ["admin"],
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": NEW_WEBHOOK.schema(config)}},
                },
            ),
        },
        "/v1/admin/webhooks/{webhook_id}/disable": {
            "post": _op(
                "Stop sending to this webhook",
                {"200": _json(REF("WebhookResponse"), "disabled")},
                (404,) + AUTH,
                ["admin"],
                parameters=[hid],
            )
        },
        "/v1/admin/webhooks/{webhook_id}/test": {
            "post": _op(
                "Send one signed webhook.test now and report the outcome",
                {"200": _json(REF("WebhookTest"), "sent or refused (see delivery)")},
                (404,) + AUTH,
                ["admin"],
                parameters=[hid],
            )
        },
    }
