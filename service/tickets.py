"""The ticketing API: intake from every channel, queues, lifecycle, follow-ups, merges, reports.

Identity: the API key says the role (``service/auth.py``). An ``agent`` key's
*name* is the agent id in the store (routing, queues, history). An ``intake``
key is the intake pipeline or the customer portal: it may open tickets for
anyone, but reading needs ``X-Requester: <requester id/e-mail>`` and then sees
only that requester's tickets (another id answers 404, like a missing one).
With ``TRIAGE_AUTH`` off (development) every caller is an admin named by
``X-Agent`` (default ``dev``).

Ticket text is stored and returned exactly as given: these are JSON data,
escaping is the job of whatever page renders them; no HTML is built here.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from triage.store import Store, access, clocks, feedback, inbox, merge, routing, tickets
from triage.store.intake import intake_grouped
from triage.store.tables import utcnow

from .auth import require_role
from . import limiter
from . import ticket_requests as shapes
from .errors import ApiError, field_error
from .state import serving_components
from .store import get_store
from .ticket_schema import read_json_body
from .validation import Spec, enum_arg, int_arg, text_arg, validate

# this blueprint's OpenAPI declaration (service.openapi reads it from app.blueprints)
from .tickets_openapi import OPENAPI_PATHS, OPENAPI_SCHEMAS  # noqa: F401

bp = Blueprint("tickets", __name__)
log = logging.getLogger("service.tickets")


# ----------------------------------------------------------------- rules after a change
def desk_team_map() -> dict[str, str]:
    from .desk import team_map

    return team_map(current_app.config)


# fields whose change can make another rule fire (rules re-run on a person's change)
RULE_FIELDS = {"ticket_type", "category", "priority", "affected_service", "customer_tier", "team"}


def rerun_after_change(session, ticket, changed: list[str], actor: str) -> dict | None:
    """Rules again on the changed ticket: accepting P1 escalates, tags and re-targets the SLA."""
    from triage.store.intake import rerun_rules

    if not RULE_FIELDS & set(changed):
        return None
    _, rules, _ = serving_components()
    return rerun_rules(
        session, ticket, rules, actor=actor, now=utcnow(), team_map=desk_team_map(), keep=changed
    )


def _viewer(session) -> access.Viewer:
    key = g.get("api_key")
    if key is None:
        return access.Viewer("admin", request.headers.get("X-Agent") or "dev")
    if key.role == "intake":
        return access.viewer_for(session, "requester", request.headers.get("X-Requester"))
    return access.viewer_for(session, key.role, key.name)


def _staff(session) -> access.Viewer:
    viewer = _viewer(session)
    access.require_staff(viewer)
    return viewer


def _json(spec: Spec) -> dict[str, Any]:
    """The body, checked against its declaration (422 listing every problem)."""
    return validate(spec, read_json_body(), current_app.config)


# ----------------------------------------------------------------- intake
@bp.post("/v1/tickets")
@require_role("intake", "agent")
def create_ticket():
    """Open a ticket (JSON from any channel, or a raw ``message/rfc822`` e-mail)."""
    triager, rules, encoder = serving_components()
    store = get_store()
    if (request.mimetype or "") == "message/rfc822":
        return _receive_email(store, triager, rules, encoder)
    payload = _intake_payload(_json(shapes.NEW_TICKET))
    limiter.spend(
        "ticket_create", f"requester:{payload['requester']}" if payload.get("requester") else limiter.caller()
    )
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > 200:
        raise ApiError(
            422,
            "Idempotency-Key is too long",
            [
                field_error(
                    "Idempotency-Key",
                    "too long",
                    expected="at most 200 characters",
                    got_text=f"{len(key)} characters",
                )
            ],
        )
    actor = (
        g.api_key.name
        if g.get("api_key") is not None and g.api_key.role != "intake"
        else payload.get("requester") or "intake"
    )
    # group commit: concurrent intakes of this worker share a write transaction; the
    # answer comes after the commit that holds this ticket (triage/store/group.py)
    result = intake_grouped(
        store,
        payload,
        actor=actor,
        triager=triager,
        ruleset=rules,
        encoder=encoder,
        idempotency_key=_scoped(key),
        now=utcnow(),
        team_map=desk_team_map(),
    )
    # the answer is built after the commit: the write lock (SQLite) is not held for it
    response = jsonify({"ok": True, **result.to_dict()})
    response.status_code = 201 if result.created else 200
    if key and not result.created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _scoped(key: str | None) -> str | None:
    """Keys are per caller: two clients choosing the same key never see each other's ticket."""
    if not key:
        return None
    caller = g.api_key.name if g.get("api_key") is not None else "anonymous"
    scope = f"{caller}\n{request.headers.get('X-Requester', '')}\n{key}"
    return "api:" + hashlib.sha256(scope.encode()).hexdigest()


def _intake_payload(raw: dict[str, Any]) -> dict[str, Any]:
    """The checked body as the store takes it (the portal speaks for its signed-in user)."""
    payload = {k: v for k, v in raw.items() if v is not None}
    portal_user = request.headers.get("X-Requester")
    if g.get("api_key") is not None and g.api_key.role == "intake" and portal_user:
        payload["requester"] = portal_user  # the portal speaks for its signed-in user only
    if "requester" in payload:
        payload["requester"] = plain_address(payload["requester"])
    payload["extra"] = {k: payload.pop(k) for k in ("vip", "major_incident") if k in payload}
    return payload


def plain_address(requester: str) -> str:
    """``Ann Example <ann@acme.example>`` (what a mail client or a CRM copies) as the address
    alone: the outbox mails one plain address and mail replies are matched to the requester by
    it, so the display-name form was stored, told nothing and threaded nothing. Anything else
    (an address, an id, a name with no address in it) is kept as given."""
    text = requester.strip()
    if not (text.endswith(">") and "<" in text):
        return requester
    _, address = email.utils.parseaddr(text)
    return address if "@" in address else requester


def _receive_email(store: Store, triager, rules, encoder):
    """A raw e-mail: one outcome (created / threaded / duplicate / refused, kept with its bytes)."""
    from .files import files

    raw = request.get_data(cache=False)
    received = inbox.receive_raw(
        store, raw, triager=triager, ruleset=rules, encoder=encoder, now=utcnow(), files=files()
    )
    with store.session(readonly=True) as session:  # the ticket as committed, for the answer
        ticket = tickets.get(session, received.ticket.id) if received.ticket is not None else None
        received.ticket = ticket
        body = {"ok": True, **received.to_dict()}
    return jsonify(body), 201 if received.created else 200


# ----------------------------------------------------------------- reading
@bp.get("/v1/tickets/<id:ticket_id>")
@require_role("intake", "agent")
def get_ticket(ticket_id: int):
    with get_store().session(readonly=True) as session:
        viewer = _viewer(session)
        ticket = access.visible(session, viewer, ticket_id)
        body = {
            "ok": True,
            "ticket": tickets.to_dict(ticket),
            "comments": [
                _comment(c) for c in tickets.comments(session, ticket_id, public_only=not viewer.is_staff)
            ],
            "watchers": tickets.watchers(session, ticket_id),
            "sla": clocks.clocks_of(session, ticket_id),
            "links": merge.links_of(session, ticket_id),
            "reference": inbox.reference(ticket_id),
        }
        if viewer.is_staff:
            body["predictions"] = {
                h: {
                    "label": p.label,
                    "probability": p.probability,
                    "decision": p.decision,
                    "bundle_id": p.bundle_id,
                }
                for h, p in feedback.latest_predictions(session, ticket_id).items()
            }
    return jsonify(body)


def _comment(c) -> dict[str, Any]:
    return {
        "id": c.id,
        "author": c.author,
        "body": c.body,
        "public": c.public,
        "channel": c.channel,
        "message_id": c.message_id,
        "moved_from": c.moved_from,
        "created_at": c.created_at.isoformat(),
    }


@bp.get("/v1/tickets")
@require_role("intake", "agent")
def list_tickets():
    """Tickets the caller may see: filters (queue, status, team, assignee, priority), full-text
    ``q``, ``sort`` and paging; ``total`` counts every match, ``next_offset`` pages on."""
    from triage.store import search

    args = request.args
    limit = int_arg(args, "limit", 50, 1, 500)
    offset = int_arg(args, "offset", 0, 0, 10**9)
    status = [s for s in (text_arg(args, "status", 200) or "").split(",") if s] or None
    priority = int_arg(args, "priority", 0, 1, 5) or None if args.get("priority") else None
    sort = enum_arg(args, "sort", tuple(sorted(search.SORTS)), "priority")
    q = text_arg(args, "q", 500) or None
    queue = text_arg(args, "queue", 100)
    team, assignee = text_arg(args, "team", 100), text_arg(args, "assignee", 100)
    with get_store().session(readonly=True) as session:
        viewer = _viewer(session)
        if viewer.role == "agent" and queue and queue not in set(viewer.teams) | {tickets.TRIAGE_QUEUE}:
            raise ApiError(404, f"queue {queue} not found")
        page = search.find(
            session,
            q=q,
            queue=queue,
            status=status,
            team=team,
            assignee=assignee,
            priority=priority,
            sort=sort,
            limit=limit,
            offset=offset,
            visible_to=viewer,
        )
        items = [tickets.to_dict(t) for t in page.items]
    return jsonify(
        {
            "ok": True,
            "tickets": items,
            "limit": limit,
            "offset": offset,
            "total": page.total,
            "total_exact": page.exact,
            "next_offset": page.next_offset,
        }
    )


@bp.get("/v1/tickets/<id:ticket_id>/history")
@require_role("agent")
def history(ticket_id: int):
    with get_store().session(readonly=True) as session:
        access.visible(session, _staff(session), ticket_id)
        events = [tickets.event_dict(e) for e in tickets.history(session, ticket_id)]
    return jsonify({"ok": True, "ticket_id": ticket_id, "events": events})


# ----------------------------------------------------------------- changing
@bp.post("/v1/tickets/<id:ticket_id>/transition")
@require_role("agent")
def transition(ticket_id: int):
    body = _json(shapes.TRANSITION)
    with get_store().session() as session:
        viewer = _staff(session)
        ticket = access.visible(session, viewer, ticket_id, lock=True)
        tickets.transition(
            session,
            ticket,
            body["to"],
            actor=viewer.id,
            now=utcnow(),
            resolution=body.get("resolution"),
            reason=body.get("reason"),
        )
        out: dict[str, Any] = {"ok": True, "ticket": tickets.to_dict(ticket)}
        if body.get("resolve_children") and ticket.status == "resolved":
            out["children"] = merge.resolve_children(session, ticket, actor=viewer.id)
    return jsonify(out)


@bp.patch("/v1/tickets/<id:ticket_id>")
@require_role("agent")
def patch_ticket(ticket_id: int):
    """Change fields (history + feedback on predicted ones); ``assignee`` assigns ("auto" routes)."""
    body = _json(shapes.TICKET_PATCH)
    assignee = body.pop("assignee", None)
    with get_store().session() as session:
        viewer = _staff(session)
        ticket = access.visible(session, viewer, ticket_id, lock=True)
        changed = tickets.edit(session, ticket, body, actor=viewer.id, now=utcnow())
        rules_out = rerun_after_change(session, ticket, changed, viewer.id)
        if assignee is not None:
            routing.assign(
                session,
                ticket_id,
                actor=viewer.id,
                agent_id=None if assignee == "auto" else str(assignee),
                now=utcnow(),
            )
            changed.append("assignee")
        out = {"ok": True, "changed": changed, "ticket": tickets.to_dict(ticket), "rules": rules_out}
    return jsonify(out)


@bp.post("/v1/tickets/<id:ticket_id>/comments")
@require_role("intake", "agent")
def add_comment(ticket_id: int):
    body = _json(shapes.COMMENT)
    text = body["body"]
    with get_store().session() as session:
        viewer = _viewer(session)
        ticket = access.visible(session, viewer, ticket_id, lock=True)
        public = bool(body.get("public", True)) or not viewer.is_staff
        comment, _ = tickets.add_comment(
            session,
            ticket,
            author=viewer.id,
            body=text,
            public=public,
            channel=str(body.get("channel") or ("api" if viewer.is_staff else "portal")),
            by_agent=viewer.is_staff,
            now=utcnow(),
        )
        if not viewer.is_staff:
            tickets.customer_replied(session, ticket, actor=viewer.id, now=utcnow())
        out = {"ok": True, "comment": _comment(comment), "ticket": tickets.to_dict(ticket)}
    return jsonify(out), 201


@bp.post("/v1/tickets/<id:ticket_id>/merge")
@require_role("agent")
def merge_ticket(ticket_id: int):
    """Merge this ticket (the duplicate) into ``{"into": parent_id}``."""
    parent = _json(shapes.MERGE)["into"]
    with get_store().session() as session:
        viewer = _staff(session)
        access.visible(session, viewer, ticket_id)
        access.visible(session, viewer, parent)
        link = merge.merge(session, ticket_id, parent, actor=viewer.id, now=utcnow())
        out = {
            "ok": True,
            "link_id": link.id,
            "ticket": tickets.to_dict(tickets.get(session, ticket_id)),
            "parent": tickets.to_dict(tickets.get(session, parent)),
        }
    return jsonify(out)


@bp.post("/v1/tickets/<id:ticket_id>/unmerge")
@require_role("agent")
def unmerge_ticket(ticket_id: int):
    with get_store().session() as session:
        viewer = _staff(session)
        access.visible(session, viewer, ticket_id)
        merge.unmerge(session, ticket_id, actor=viewer.id, now=utcnow())
        out = {"ok": True, "ticket": tickets.to_dict(tickets.get(session, ticket_id))}
    return jsonify(out)


@bp.post("/v1/tickets/<id:ticket_id>/link")
@require_role("agent")
def link_ticket(ticket_id: int):
    """``{"parent": id}`` links to a parent incident; ``{"parent": null}`` unlinks."""
    parent = _json(shapes.LINK)["parent"]
    with get_store().session() as session:
        viewer = _staff(session)
        access.visible(session, viewer, ticket_id)
        if parent is None:
            merge.unlink_incident(session, ticket_id, actor=viewer.id, now=utcnow())
        else:
            access.visible(session, viewer, parent)
            merge.link_incident(session, ticket_id, parent, actor=viewer.id, now=utcnow())
        out = {"ok": True, "links": merge.links_of(session, ticket_id)}
    return jsonify(out)


@bp.get("/v1/reports/breaches")
@require_role("agent")
def breach_report():
    with get_store().session(readonly=True) as session:
        viewer = _staff(session)
        rows = clocks.breaches(
            session, utcnow(), include_closed=enum_arg(request.args, "all", ("0", "1"), "0") == "1"
        )
        if viewer.role == "agent":
            rows = [r for r in rows if r["team"] in viewer.teams or r["assignee"] == viewer.id]
    return jsonify({"ok": True, "breaches": rows, "count": len(rows)})


# ----------------------------------------------------------------- major-incident proposals
@bp.get("/v1/incidents/proposals")
@require_role("agent")
def list_proposals():
    """The burst detector's open major-incident proposals, newest first."""
    from triage.store import proposals

    args = request.args
    limit = int_arg(args, "limit", 50, 1, 500)
    offset = int_arg(args, "offset", 0, 0, 10**9)
    with get_store().session(readonly=True) as session:
        _staff(session)
        rows = proposals.open_proposals(session, limit=limit, offset=offset)
    return jsonify({"ok": True, "proposals": rows, "limit": limit, "offset": offset})


@bp.post("/v1/incidents/proposals/<id:proposal_id>/<decision>")
@require_role("agent")
def decide_proposal(proposal_id: int, decision: str):
    """``accept`` links every member to the parent (tagged major-incident); ``decline`` closes."""
    from triage.store import proposals

    if decision not in ("accept", "decline"):
        raise ApiError(404, f"no such decision {decision!r}: accept or decline")
    with get_store().session() as session:
        viewer = _staff(session)
        act = proposals.accept if decision == "accept" else proposals.decline
        out = act(session, proposal_id, actor=viewer.id, now=utcnow())
    return jsonify({"ok": True, "proposal": out})
