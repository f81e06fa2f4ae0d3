"""``POST /v1/classify``: one ticket or a bounded batch → predictions, KB suggestions, rules/SLA.

A request takes one snapshot of the served state and uses only it, so a hot swap
mid-request cannot mix bundles. Texts are embedded once per call (the memoising
encoder serves the KB search from the vectors the heads already paid for).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from datetime import date, datetime, timezone
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from triage import kb
from triage.errors import InputError
from triage.htmltext import as_text
from triage.rule_input import rule_input as build_rule_input
from triage.rule_input import with_desk_teams
from triage.text import model_text

from .auth import require_role
from .errors import ApiError, field_error
from .ticket_schema import parse_classify_body, read_json_body

bp = Blueprint("classify", __name__)
log = logging.getLogger("service.classify")


@bp.post("/v1/classify")
@require_role("intake", "agent")
def classify():
    config = current_app.config
    is_batch, items = parse_classify_body(read_json_body(), config)
    loaded = current_app.extensions["triage.state"].snapshot()
    from .desk import team_map

    kb_k = int(config["TRIAGE_KB_K"]) if _wants_kb() else 0
    results = classify_tickets(loaded, items, kb_k, team_map(config))
    metrics = current_app.extensions["triage.metrics"]
    metrics.count_predictions(results)
    for r in results:
        metrics.child(metrics.kb_suggestions, "classify", "true" if r["kb"] else "false").inc()
    log.info("classified %d ticket(s) with %s", len(results), loaded.bundle_id)
    body: dict[str, Any] = {"ok": True, "request_id": g.request_id, "bundle_id": loaded.bundle_id}
    if is_batch:
        body["results"] = results
    else:
        body["result"] = results[0]
    return jsonify(body)


def _wants_kb() -> bool:
    """``?kb=0`` asks for no KB suggestions; ``?kb=1`` (or no ``kb``) for the usual ones."""
    value = request.args.get("kb")
    if value is None or value == "1":
        return True
    if value == "0":
        return False
    raise ApiError(
        422,
        "query parameter kb must be 0 or 1",
        [field_error("kb", "not a valid value", expected="0|1", got=value)],
    )


def classify_tickets(loaded, items: list, kb_k: int, team_map: dict | None = None) -> list[dict]:
    """Heads, KB and rules for each (Ticket, extras) pair, in request order.

    HTML bodies become text first, with the conversion intake and mail use, so the
    model and the rules see here what they see on the stored ticket.

    The texts are embedded only when something reads the vectors: the KB search
    (``kb_k`` > 0) or a head fitted on them. A TF-IDF-only bundle asked for no KB
    suggestions (``?kb=0``) never touches the encoder: the fast path.
    """
    items = [(_plain(t), extras) for t, extras in items]
    tickets = [t for t, _ in items]
    texts = [model_text(t.subject, t.body) for t in tickets]
    wants = _vectors_read(loaded.triager, texts, kb_k)
    vectors = loaded.encoder.encode(texts) if loaded.encoder is not None and wants else [None] * len(texts)
    with sklearn_fast_path():
        given = {"texts": texts} if getattr(loaded.triager, "takes_texts", False) else {}
        predictions = loaded.triager.classify(tickets, **given)  # the texts normalised once
    now = datetime.now(timezone.utc)
    out = []
    for (ticket, extras), text, vec, pred in zip(items, texts, vectors, predictions):
        suggestions = kb.suggest(loaded.kb, loaded.encoder, text, k=kb_k, vector=vec) if kb_k > 0 else []
        seen = with_desk_teams(pred, team_map)
        outcome = evaluate_rules(
            loaded.rules,
            rule_input(ticket, extras, seen, now, loaded.rules),
            ticket,
            ticket.created_at or now,
        )
        out.append(
            {
                "id": extras.get("id"),
                "fields": pred["fields"],
                "kb": [jsonable(s) for s in suggestions],
                **outcome_json(outcome),
            }
        )
    return out


def _vectors_read(triager, texts: list[str], kb_k: int) -> bool:
    """Does anything read the texts' own vectors: a head fitted on them, or the KB search of
    a text it reads whole?

    The KB searches a long text (over ``kb.QUERY_WORDS`` words, ~9 % of real tickets) by the
    vector of its first sentences, which ``kb.suggest`` embeds itself; the whole text's
    vector would go unread. The batch is embedded all or nothing, as before, because a
    batch's texts are quantised together: leaving one out would move the others' vectors.
    """
    if bool(getattr(triager, "needs_vectors", True)):
        return True
    return kb_k > 0 and not all(kb.query_window(text)[1] for text in texts)


def _plain(ticket):
    body = as_text(ticket.body)
    return ticket if body == ticket.body else dataclasses.replace(ticket, body=body)


def sklearn_fast_path():
    """Skip scikit-learn's per-call input checks on the request path.

    The inputs are our own validated texts and finite vectors; the checks (finite
    scan, parameter validation) were a measurable share of the heads' time on
    one-ticket calls, repeated for each of the five heads.
    """
    import sklearn

    return sklearn.config_context(assume_finite=True, skip_parameter_validation=True)


def evaluate_rules(rules, fields: dict, ticket, now: datetime):
    """Rules on the fields; a bad *given* value is the caller's 422, a bad prediction is dropped."""
    try:
        return rules.evaluate(fields, now)
    except InputError as exc:
        column = exc.details.get("column")
        if column in ticket.fields:
            raise ApiError(
                422,
                f"fields.{column}: {exc.message}",
                [
                    field_error(
                        f"fields.{column}",
                        "not a valid value",
                        expected=exc.details.get("expected"),
                        got=ticket.fields[column],
                    )
                ],
            ) from exc
        if column is None or column not in fields:
            raise
        log.warning("predicted %s %r is not usable by the rules: %s", column, fields[column], exc)
        return rules.evaluate({k: v for k, v in fields.items() if k != column}, now)


def rule_input(ticket, extras: dict, prediction: dict, now: datetime | None = None, rules=None) -> dict:
    """What the rules see for a classified (not stored) ticket: ``triage.rule_input``, the
    same function intake and field changes use, on the given fields and the prediction
    (and the team's queue from the store when a rule reads ``team.*``)."""
    known = {
        **ticket.fields,
        "channel": ticket.channel,
        "customer_tier": ticket.customer_tier,
        "affected_service": ticket.affected_service,
        "requester": ticket.requester,
        "vip": extras.get("vip"),
        "major_incident": extras.get("major_incident"),
        "subject": ticket.subject,
        "body": ticket.body,
    }
    return build_rule_input(known, prediction, _team_state(known, prediction, now, rules))


def _team_state(known: dict, prediction: dict, now: datetime | None, rules) -> dict | None:
    if rules is None:
        loaded = getattr(current_app.extensions.get("triage.state"), "current", None)
        rules = getattr(loaded, "rules", None)
    if not getattr(rules, "reads_team_state", False):
        return None  # no rule reads it: classify never touches the database
    from triage.rule_input import team_of
    from triage.store import routing

    from .tickets import get_store

    with get_store().session(readonly=True) as s:
        return routing.team_state(s, team_of(known, prediction), now or datetime.now(timezone.utc))


def outcome_json(outcome) -> dict:
    """The rules Outcome as JSON: fields after actions, team, SLA, tags, escalate, fired."""
    fields = {
        k: v
        for k, v in dict(getattr(outcome, "fields", {}) or {}).items()
        if k not in {"subject", "body", "text"} and not k.startswith("predicted.")
    }
    return {
        "rules": {
            "fields": jsonable(fields),
            "team": jsonable(getattr(outcome, "team", None)),
            "tags": jsonable(list(getattr(outcome, "tags", []) or [])),
            "escalate": jsonable(getattr(outcome, "escalate", None)),
            "fired": jsonable(list(getattr(outcome, "fired", []) or [])),
            "senior": jsonable(getattr(outcome, "senior", False)),
            "accepted": jsonable(list(getattr(outcome, "accepted", []) or [])),
        },
        "sla": jsonable(getattr(outcome, "sla", None)),
    }


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes, tuples and sets → plain JSON values."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:  # most leaves: as they are
        return value
    if kind is float:
        return None if value != value else value  # NaN is not JSON
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value
