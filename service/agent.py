"""The agent workspace: team queues with live SLA clocks, the triage queue, a ticket page.

Pages for people signed in as ``agent`` or ``admin`` (``service/pages_security.py``).
They read and change tickets through the same store repositories as the JSON
API (``service/tickets.py``), so a field an agent sets here writes the same
history event and the same feedback row (a label for the next retrain, and an
override for the confidence report) as ``PATCH /v1/tickets/<id>``.

SLA clocks are computed by the store; the page carries each clock's due time
and ``agent.js`` counts it down every second, so the number an agent reads is
never a stale server render.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from triage.errors import TriageError
from triage import kb
from triage.store import access, clocks, feedback, merge, routing, tickets
from triage.store.attachments import AttachmentRefused
from triage.store.tables import TicketRow, TicketVector, utcnow
from triage.text import model_text
from triage.ticket import TRANSITIONS, Status

from .attachments import current_files_of, save_uploads
from .explain_view import explain_ticket
from .pages_security import accepts_uploads, login_required, register_page_errors, safe_next
from .portal import AFFECTED, find_article
from .store import get_store
from .tickets import rerun_after_change
from .validation import ASCII_INT, ID_MAX

bp = Blueprint("agent", __name__, url_prefix="/agent")
register_page_errors(bp)

STATUS_ACTIONS = {"in_progress": "Start work", "resolved": "Resolve", "closed": "Close"}
PENDING_LABELS = {"customer": "Wait for customer", "third_party": "Wait for third party"}
PRIORITIES = ["P1", "P2", "P3", "P4", "P5"]  # as the store accepts (the rules know P1..P4)
TRIAGE_FIELDS = ("category", "priority", "affected_service", "team")


def _viewer(session) -> access.Viewer:
    return access.viewer_for(session, g.user["role"], g.user["id"])


# ----------------------------------------------------------------- queues
PAGE_SIZE = 50
SORT_LABELS = {
    "priority": "Priority",
    "predicted_priority": "Priority (set or predicted)",
    "due": "SLA due",
    "-created": "Newest",
    "created": "Oldest",
    "-updated": "Recently updated",
}
STATUS_FILTERS = {"open": list(tickets.OPEN_STATUSES), "all": None, **{st.value: [st.value] for st in Status}}


@bp.get("/")
@login_required("agent")
def queues():
    """My tickets, a team's queue, the triage queue or a search: filtered, sorted, paged.

    Filters are plain GET parameters (``view``, ``queue``, ``q``, ``status``, ``team``,
    ``assignee``, ``priority``, ``sort``, ``page``), so every view is a link an agent
    can bookmark and reach with the keyboard.
    """
    from triage.store import search

    args = _list_args()
    with get_store().session(readonly=True) as s:
        viewer = _viewer(s)
        counts = _queue_counts(s, viewer)
        mine = search.find(
            s, assignee=viewer.id, status=list(tickets.OPEN_STATUSES), limit=1, visible_to=viewer
        ).total
        view = args["view"]
        queue = None
        if view == "queue":
            queue = args["queue"] or next(
                (q for q in counts if q != tickets.TRIAGE_QUEUE), tickets.TRIAGE_QUEUE
            )
        page = search.find(
            s,
            q=args["q"],
            queue=queue,
            status=STATUS_FILTERS[args["status"]],
            team=args["team"],
            priority=args["priority"],
            sort=args["sort"],
            assignee=viewer.id if view == "mine" else args["assignee"],
            visible_to=viewer,
            limit=PAGE_SIZE,
            offset=(args["page"] - 1) * PAGE_SIZE,
        )
        items = [_queue_item(s, t) for t in page.items]
        agents = _agents(s)
        from triage.store import proposals

        proposed = proposals.open_proposals(s, limit=10)
    return render_template(
        "agent/queues.html",
        counts=counts,
        queue=queue,
        items=items,
        view=view,
        mine=mine,
        args=args,
        total=page.total,
        exact=page.exact,
        pages=max(1, -(-page.total // PAGE_SIZE)),
        sorts=SORT_LABELS,
        statuses=list(STATUS_FILTERS),
        agents=agents,
        proposed=proposed,
        teams=sorted(set(counts) - {tickets.TRIAGE_QUEUE}),
    )


def _list_args() -> dict[str, Any]:
    """The list's GET parameters, each checked; a bad one falls back to its default."""
    from triage.store.search import SORTS

    a = request.args
    view = a.get("view") or ("search" if a.get("q") else "queue")
    if view not in ("mine", "queue", "search"):
        view = "queue"
    try:
        page = max(1, int(a.get("page", 1)))
    except ValueError:
        page = 1
    priority = a.get("priority", "")
    return {
        "view": view,
        "queue": a.get("queue") or None,
        "q": (a.get("q") or "")[:200],
        "status": a.get("status") if a.get("status") in STATUS_FILTERS else "open",
        "team": a.get("team") or None,
        "assignee": a.get("assignee") or None,
        "priority": int(priority) if priority.isdigit() else None,
        "sort": a.get("sort") if a.get("sort") in SORTS else "priority",
        "page": page,
    }


def _agents(session) -> list[dict[str, Any]]:
    from triage.store.tables import Agent

    rows = session.scalars(select(Agent).where(Agent.active.is_not(False)).order_by(Agent.id))
    return [
        {"id": a.id, "name": a.name, "teams": sorted(t.name for t in a.teams), "available": a.available}
        for a in rows
    ]


def _queue_counts(session, viewer: access.Viewer) -> dict[str, int]:
    """Open tickets per queue the viewer may open (agents: their teams and triage)."""
    stmt = (
        select(TicketRow.queue, func.count())
        .where(TicketRow.status.in_(tickets.OPEN_STATUSES))
        .group_by(TicketRow.queue)
    )
    found = dict(session.execute(stmt).all())
    names = sorted(found) if viewer.role == "admin" else sorted(viewer.teams)
    out = {name: int(found.get(name, 0)) for name in names if name != tickets.TRIAGE_QUEUE}
    out[tickets.TRIAGE_QUEUE] = int(found.get(tickets.TRIAGE_QUEUE, 0))
    return out


def _queue_item(session, ticket: TicketRow) -> dict[str, Any]:
    item = tickets.to_dict(ticket)
    item["clock"] = primary_clock(clocks.clocks_of(session, ticket.id))
    return item


def primary_clock(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The clock that matters now: the first still running (response before resolution)."""
    for row in rows:
        if not row.get("stopped_at"):
            return _with_warning(row)
    return _with_warning(rows[-1]) if rows else None


def _with_warning(row: dict[str, Any]) -> dict[str, Any]:
    target = row.get("target_minutes") or 0
    share = (row.get("elapsed_minutes") or 0) / target if target else 0
    return {**row, "warning": row["state"] == "running" and share >= 0.75}


# ----------------------------------------------------------------- triage queue
@bp.get("/triage")
@login_required("agent")
def triage_queue():
    """Tickets whose fields the model did not apply, with its suggestions to accept or correct."""
    labels = _head_labels()
    with get_store().session() as s:
        rows = access.list_visible(
            s, _viewer(s), queue=tickets.TRIAGE_QUEUE, status=list(tickets.OPEN_STATUSES), limit=100
        )
        items = [{**tickets.to_dict(t), "open": open_fields(s, t, labels)} for t in rows]
    return render_template("agent/triage.html", items=items)


def open_fields(session, ticket: TicketRow, labels: dict[str, list[str]]) -> list[dict]:
    """Each unset field with the model's view of it (or none), and the values to choose from."""
    preds = feedback.latest_predictions(session, ticket.id)
    out = []
    for name in TRIAGE_FIELDS:
        if getattr(ticket, name) not in (None, ""):
            continue
        heads = [(h, p) for h, p in preds.items() if feedback.field_of(h) == name]
        options = sorted({o for h, _ in heads for o in labels.get(h, [])}) or field_choices(name)
        out.append(
            {
                "field": name,
                "options": options,
                "predictions": [
                    {"head": h, "label": p.label, "decision": p.decision, "probability": p.probability}
                    for h, p in heads
                ],
            }
        )
    return out


def field_choices(name: str) -> list[str]:
    """Values an agent may pick for a field no model head predicts."""
    if name == "priority":
        return PRIORITIES
    if name == "affected_service":
        return sorted({service for _, _, service in AFFECTED if service})
    return []


def _head_labels() -> dict[str, list[str]]:
    """Class labels of each head of the served bundle (the correction choices)."""
    state = current_app.extensions["triage.state"]
    loaded = getattr(state, "current", None)
    manifest = getattr(getattr(loaded, "triager", None), "manifest", None) or {}
    out = {
        h: [str(c) for c in (spec.get("classes") or spec.get("labels") or [])]
        for h, spec in (manifest.get("heads") or {}).items()
    }
    out.setdefault("priority", PRIORITIES)
    return out


@bp.post("/tickets/<id:ticket_id>/field")
@login_required("agent")
def set_field(ticket_id: int):
    """Accept or correct one field: through ``tickets.edit``, so feedback rows are written."""
    name, value = request.form.get("field", ""), request.form.get("value", "").strip()
    back = safe_next(request.form.get("next"), url_for("agent.ticket", ticket_id=ticket_id))
    if name not in TRIAGE_FIELDS or not value:
        flash("Choose a value first.", "error")
        return redirect(back)
    with get_store().session() as s:
        viewer = _viewer(s)
        ticket = access.visible(s, viewer, ticket_id, lock=True)
        changed = tickets.edit(s, ticket, {name: value}, actor=viewer.id, now=utcnow())
        rerun_after_change(s, ticket, changed, viewer.id)  # accepting P1 escalates, re-times
        moved = ticket.queue if "queue" in changed else None  # the store routes a triaged ticket
    what = f"{name.replace('_', ' ')} set to {value}" if name in changed else f"{name} unchanged"
    flash(f"Ticket {ticket_id}: {what}" + (f"; moved to the {moved} queue." if moved else "."), "ok")
    return redirect(back)


# ----------------------------------------------------------------- one ticket
@bp.get("/tickets/<id:ticket_id>")
@login_required("agent")
def ticket(ticket_id: int):
    """History, SLA, predictions, duplicate candidates (merge) and related articles."""
    labels = _head_labels()
    with get_store().session() as s:
        row = access.visible(s, _viewer(s), ticket_id)
        page = {
            "ticket": tickets.to_dict(row),
            "clocks": [_with_warning(c) for c in clocks.clocks_of(s, ticket_id)],
            "history": [tickets.event_dict(e) for e in tickets.history(s, ticket_id)],
            "comments": tickets.comments(s, ticket_id),
            "predictions": feedback.latest_predictions(s, ticket_id),
            "open": open_fields(s, row, labels),
            "links": merge.links_of(s, ticket_id),
            "duplicates": duplicate_candidates(s, row),
            "actions": status_actions(row.status),
            "can_pend": Status.PENDING in TRANSITIONS[Status(row.status)],
            "pending_labels": PENDING_LABELS,
            "agents": _agents(s),
            "teams": _team_names(s),
            "files": current_files_of(s, ticket_id, staff=True),
        }
        text = model_text(row.subject, row.body)
        page["explain"] = explain_ticket(row)
    page["related"] = related_articles(text)
    portal = (page["ticket"]["extra"] or {}).get("portal") or {}
    page["seen"] = [_article_title(a) for a in portal.get("opened_articles") or []]
    return render_template("agent/ticket.html", **page)


def status_actions(status: str) -> list[tuple[str, str]]:
    """The lifecycle moves offered as buttons (assignment and pending have their own forms).

    Back to work is "Resume" from pending and "Reopen" from resolved or closed.
    """
    allowed = {s.value for s in TRANSITIONS[Status(status)]}
    labels = dict(STATUS_ACTIONS)
    if status == Status.PENDING.value:
        labels["in_progress"] = "Resume"
    elif status in (Status.RESOLVED.value, Status.CLOSED.value):
        labels["in_progress"] = "Reopen"
    return [(to, label) for to, label in labels.items() if to in allowed]


def duplicate_candidates(session, ticket: TicketRow) -> list[dict[str, Any]]:
    """Open tickets close to this one (from the vectors kept at intake), best first."""
    from triage.store import similar
    import numpy as np

    kept = session.get(TicketVector, ticket.id)
    if kept is None:
        return []
    vector = np.frombuffer(kept.vector, dtype=np.float32)
    out = []
    for hit in similar.offer(session, ticket, vector, kept.encoder)[:5]:
        other = session.get(TicketRow, hit["ticket_id"])
        out.append({**hit, "subject": other.subject, "status": other.status, "requester": other.requester})
    return out


def related_articles(text: str, k: int = 3) -> list[dict[str, Any]]:
    """KB articles for the ticket's text (empty while no bundle is loaded)."""
    loaded = getattr(current_app.extensions["triage.state"], "current", None)
    if loaded is None or loaded.kb is None or loaded.encoder is None or not text:
        return []
    return [
        {
            "id": x.article_id,
            "title": x.title,
            "snippet": x.snippet,
            "score": x.score,
            "attribution": x.attribution,
        }
        for x in kb.suggest(loaded.kb, loaded.encoder, text, k=k)  # the query-window rule
    ]


def _article_title(article_id: str) -> dict[str, str]:
    try:
        found = find_article(article_id)
    except Exception:  # noqa: BLE001 - no bundle loaded: show the id alone
        found = None
    return {"id": article_id, "title": found.title if found else article_id}


@bp.post("/tickets/<id:ticket_id>/merge")
@login_required("agent")
def merge_into(ticket_id: int):
    """Merge this ticket (the duplicate) into another one (the parent)."""
    raw = request.form.get("into", "").strip().lstrip("#")
    parent = int(raw) if ASCII_INT.fullmatch(raw) else 0  # "²".isdigit() is True: not a number
    if not 1 <= parent <= ID_MAX:
        flash("Give the number of the ticket to merge into.", "error")
        return redirect(url_for("agent.ticket", ticket_id=ticket_id))
    with get_store().session() as s:
        viewer = _viewer(s)
        access.visible(s, viewer, ticket_id)
        access.visible(s, viewer, parent)
        merge.merge(s, ticket_id, parent, actor=viewer.id, now=utcnow())
    flash(f"Ticket {ticket_id} was merged into ticket {parent}.", "ok")
    return redirect(url_for("agent.ticket", ticket_id=parent))


@bp.post("/tickets/<id:ticket_id>/comment")
@accepts_uploads
@login_required("agent")
def comment(ticket_id: int):
    """A reply to the customer (public) or an internal note, with files if any."""
    text = request.form.get("body", "").strip()
    public = request.form.get("public") == "1"
    uploads = [f for f in request.files.getlist("file") if f and f.filename]
    if not text and not uploads:
        return redirect(url_for("agent.ticket", ticket_id=ticket_id))
    try:
        with get_store().session() as s:
            viewer = _viewer(s)
            row = access.visible(s, viewer, ticket_id, lock=True)
            note, _ = tickets.add_comment(
                s,
                row,
                author=viewer.id,
                body=text[:50_000] or "(files attached)",
                public=public,
                channel="web",
                by_agent=True,
                now=utcnow(),
            )
            save_uploads(s, row, uploads, source="web", by=viewer.id, public=public, comment_id=note.id)
    except AttachmentRefused as exc:
        flash(f"Nothing was sent: {exc.message}", "error")
        return redirect(url_for("agent.ticket", ticket_id=ticket_id))
    flash("Reply added." if public else "Note added.", "ok")
    return redirect(url_for("agent.ticket", ticket_id=ticket_id))


@bp.post("/tickets/<id:ticket_id>/status")
@login_required("agent")
def set_status(ticket_id: int):
    """Move along the lifecycle; a refusal (e.g. fields still missing) is shown, not raised."""
    to = request.form.get("to", "")
    reason = request.form.get("reason") or None
    try:
        with get_store().session() as s:
            viewer = _viewer(s)
            row = access.visible(s, viewer, ticket_id, lock=True)
            tickets.transition(
                s,
                row,
                to,
                actor=viewer.id,
                now=utcnow(),
                resolution="solved" if to in ("resolved", "closed") else None,
                reason=reason if to == "pending" else None,
            )
        why = f" ({PENDING_LABELS.get(reason, reason).lower()})" if to == "pending" and reason else ""
        flash(f"Ticket {ticket_id} is now {to.replace('_', ' ')}{why}.", "ok")
    except TriageError as exc:
        flash(exc.message, "error")
    return redirect(url_for("agent.ticket", ticket_id=ticket_id))


def _team_names(session) -> list[str]:
    from triage.store.desk import team_names

    return team_names(session)


# ----------------------------------------------------------------- ownership
@bp.post("/tickets/<id:ticket_id>/claim")
@login_required("agent")
def claim(ticket_id: int):
    """Take the ticket yourself (it moves to assigned; the capacity check still applies)."""
    try:
        with get_store().session() as s:
            viewer = _viewer(s)
            access.visible(s, viewer, ticket_id, lock=True)
            routing.assign(s, ticket_id, actor=viewer.id, agent_id=viewer.id, now=utcnow())
        flash(f"Ticket {ticket_id} is yours.", "ok")
    except TriageError as exc:
        flash(exc.message, "error")
    return redirect(_back(ticket_id))


@bp.post("/tickets/<id:ticket_id>/assign")
@login_required("agent")
def assign(ticket_id: int):
    """Assign or reassign to an agent, or hand the ticket to another team's queue."""
    try:
        with get_store().session() as s:
            viewer = _viewer(s)
            _assign_one(
                s,
                viewer,
                ticket_id,
                request.form.get("agent", "").strip(),
                request.form.get("team", "").strip(),
            )
        flash(f"Ticket {ticket_id} reassigned.", "ok")
    except TriageError as exc:
        flash(exc.message, "error")
    return redirect(_back(ticket_id))


def _assign_one(session, viewer, ticket_id: int, agent: str, team: str) -> None:
    from triage.errors import InputError

    row = access.visible(session, viewer, ticket_id, lock=True)
    if not agent and not team:
        raise InputError("choose an agent or a team", column="agent", expected="agent or team", got="nothing")
    if team and team != row.team:
        routing.unassign(session, row, actor=viewer.id, now=utcnow())
        tickets.edit(session, row, {"team": team, "queue": team}, actor=viewer.id, now=utcnow())
    if agent:
        routing.assign(
            session, ticket_id, actor=viewer.id, agent_id=None if agent == "auto" else agent, now=utcnow()
        )


@bp.post("/bulk")
@login_required("agent")
def bulk():
    """Assign or close several tickets at once; each is done (or refused) on its own."""
    ids = [int(x) for x in request.form.getlist("ticket") if x.isdigit()][:200]
    action = request.form.get("action", "")
    back = safe_next(request.form.get("next"), url_for("agent.queues"))
    if not ids or action not in ("assign", "close", "claim"):
        flash("Select tickets and an action first.", "error")
        return redirect(back)
    done, refused = [], []
    for ticket_id in ids:
        try:
            with get_store().session() as s:  # one transaction each: one refusal stops no other
                viewer = _viewer(s)
                if action == "close":
                    row = access.visible(s, viewer, ticket_id, lock=True)
                    tickets.transition(
                        s, row, Status.CLOSED, actor=viewer.id, now=utcnow(), resolution="solved"
                    )
                else:
                    agent = viewer.id if action == "claim" else request.form.get("agent", "")
                    _assign_one(s, viewer, ticket_id, agent, "")
            done.append(ticket_id)
        except TriageError as exc:
            refused.append(f"{ticket_id}: {exc.message}")
    if done:
        flash(f"{action.capitalize()}: done for {', '.join(map(str, done))}.", "ok")
    for line in refused[:5]:
        flash(line, "error")
    return redirect(back)


@bp.post("/tickets/<id:ticket_id>/unmerge")
@login_required("agent")
def unmerge(ticket_id: int):
    try:
        with get_store().session() as s:
            viewer = _viewer(s)
            access.visible(s, viewer, ticket_id)
            merge.unmerge(s, ticket_id, actor=viewer.id, now=utcnow())
        flash(f"Ticket {ticket_id} was unmerged.", "ok")
    except TriageError as exc:
        flash(exc.message, "error")
    return redirect(_back(ticket_id))


@bp.post("/tickets/<id:ticket_id>/link")
@login_required("agent")
def link(ticket_id: int):
    """Link to a parent (major) incident, or unlink with an empty number."""
    raw = request.form.get("parent", "").strip().lstrip("#")
    try:
        with get_store().session() as s:
            viewer = _viewer(s)
            access.visible(s, viewer, ticket_id)
            if raw:
                if not raw.isdigit():
                    raise TriageError("give the number of the parent incident")
                access.visible(s, viewer, int(raw))
            if raw:
                merge.link_incident(s, ticket_id, int(raw), actor=viewer.id, now=utcnow())
            else:
                merge.unlink_incident(s, ticket_id, actor=viewer.id, now=utcnow())
        flash(f"Ticket {ticket_id} linked to {raw}." if raw else f"Ticket {ticket_id} unlinked.", "ok")
    except TriageError as exc:
        flash(exc.message, "error")
    return redirect(_back(ticket_id))


def _back(ticket_id: int) -> str:
    return safe_next(request.form.get("next"), url_for("agent.ticket", ticket_id=ticket_id))


@bp.post("/proposals/<id:proposal_id>/<decision>")
@login_required("agent")
def decide_proposal(proposal_id: int, decision: str):
    """Accept (link the members to the parent) or decline a proposed major incident."""
    from triage.store import proposals

    if decision not in ("accept", "decline"):
        flash("Accept or decline.", "error")
        return redirect(url_for("agent.queues"))
    try:
        with get_store().session() as s:
            viewer = _viewer(s)
            act = proposals.accept if decision == "accept" else proposals.decline
            out = act(s, proposal_id, actor=viewer.id, now=utcnow())
        flash(
            f"Major incident {out['parent']}: {decision}ed"
            + (f", {len(out.get('linked', []))} ticket(s) linked." if decision == "accept" else "."),
            "ok",
        )
    except TriageError as exc:
        flash(exc.message, "error")
    return redirect(safe_next(request.form.get("next"), url_for("agent.queues")))
