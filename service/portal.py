"""The self-service portal: describe the problem, read what might fix it, or open a ticket.

As the customer types, ``portal.js`` asks :func:`suggest` (debounced) for the
knowledge articles closest to the text; each can be opened in place. "This
solved it" ends the visit as a deflection, "I still need help" opens the ticket
through the same intake as ``POST /v1/tickets`` with the articles that were
shown and opened recorded on it. A random share of visits
(``TRIAGE_PORTAL_CONTROL_SHARE``) is the control group and is offered nothing,
so the knowledge report can measure deflection against it.

The form never asks for internal categories: it asks what is affected (a
plain-language list mapped to ``affected_service``), how many people and
whether they can work (ITIL impact and urgency, hence the priority).
Everything shown comes from the store or the KB as text; the templates and
``portal.js`` escape it (no ``innerHTML``, no ``|safe``).
"""

from __future__ import annotations

import random

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from triage import kb
from triage.priority import PriorityMatrix
from triage.store import access, satisfaction, tickets
from triage.store.attachments import AttachmentRefused
from triage.store import portal_events as events
from triage.store.intake import intake
from triage.text import model_text
from triage.store.tables import utcnow

from .errors import ApiError
from . import limiter
from .attachments import current_files_of, save_uploads
from .pages_security import accepts_uploads, login_required, register_page_errors
from .state import serving_components
from .store import get_store

bp = Blueprint("portal", __name__, url_prefix="/portal")
register_page_errors(bp)

# What the customer picks → the ticket's affected_service (None: the agents decide).
AFFECTED = [
    ("identity", "Signing in, passwords or two-step verification", "Identity"),
    ("email", "E-mail or calendar", "Email"),
    ("laptop", "My laptop, headset or other equipment", "Laptop fleet"),
    ("vpn", "Connecting from home (VPN)", "VPN"),
    ("wifi", "Wi-Fi in the office", "Wi-Fi"),
    ("teams", "Teams calls, meetings or chat", "Teams"),
    ("sharepoint", "Shared files and SharePoint sites", "SharePoint"),
    ("printing", "Printing or scanning", "Printing"),
    ("erp", "Orders, invoices or stock (ERP)", "ERP"),
    ("payroll", "Pay, payslips or expenses", "Payroll"),
    ("other", "Something else, or I am not sure", None),
]
PEOPLE = [
    ("me", "Just me", "low"),
    ("team", "My team or a few colleagues", "medium"),
    ("many", "Many people, a whole site or all customers", "high"),
]
WORK = [
    ("yes", "Yes, it is an inconvenience", "low"),
    ("partly", "Partly, it slows me down", "medium"),
    ("no", "No, I cannot work", "high"),
]
SUGGESTIONS_K = 5


# Statuses as a customer reads them (the lifecycle's words are the help desk's).
CUSTOMER_STATUS = {
    "new": "received",
    "assigned": "with an agent",
    "in_progress": "being worked on",
    "pending": "waiting for your reply",
    "resolved": "resolved",
    "closed": "closed",
}


@bp.app_template_filter("customer_status")
def customer_status(status: str) -> str:
    return CUSTOMER_STATUS.get(status, str(status).replace("_", " "))


# ----------------------------------------------------------------- the visit
def _visit(store_session, *, start: bool = False):
    """This browser session's open visit; ``start`` makes one (control group drawn here)."""
    found = events.get_visit(store_session, session.get("portal_visit"))
    if found is not None and found.outcome is None and found.visitor == g.user["id"]:
        return found
    if not start:
        return None
    share = float(current_app.config.get("TRIAGE_PORTAL_CONTROL_SHARE", 0.10))
    visit = events.start_visit(store_session, g.user["id"], random.random() < share, utcnow())
    session["portal_visit"] = visit.id
    return visit


@bp.get("/")
@login_required("requester")
def start():
    """The request form; a visit starts (or continues) here."""
    with get_store().session() as s:
        visit = _visit(s, start=True)
        control = visit.control
    return render_template(
        "portal/start.html", affected=AFFECTED, people=PEOPLE, work=WORK, control=control, form={}, errors={}
    )


@bp.get("/suggest")
@login_required("requester")
@limiter.limited("suggest", key=limiter.caller)
def suggest():
    """KB suggestions for the typed text (none for control visits); records what was shown."""
    text = model_text(None, request.args.get("q", "")[:1000])
    store = get_store()
    with store.session() as s:
        visit = _visit(s)
        visit_id = None if visit is None or visit.control else visit.id
    if visit_id is None or not text:
        return jsonify(ok=True, suggestions=[])
    try:  # outside any transaction: SQLite's write lock is not held while encoding
        found = _search(text, SUGGESTIONS_K)
    except ApiError:  # no bundle loaded yet: suggestions are a help, never an obstacle
        return jsonify(ok=True, suggestions=[])
    with store.session() as s:
        visit = events.get_visit(s, visit_id)
        for rank, item in enumerate(found, 1):
            events.record(s, visit, "shown", item.article_id, rank=rank, score=item.score, now=utcnow())
    return jsonify(
        ok=True,
        suggestions=[
            {
                "article_id": x.article_id,
                "title": x.title,
                "snippet": x.snippet,
                "score": x.score,
                "attribution": x.attribution,
            }
            for x in found
        ],
    )


def _search(text: str, k: int):
    """The same search as ``GET /v1/kb/suggest`` on the served snapshot."""
    loaded = current_app.extensions["triage.state"].snapshot()
    found = kb.suggest(loaded.kb, loaded.encoder, text, k=k)  # the query-window rule of /v1/kb/suggest
    metrics = current_app.extensions.get("triage.metrics")
    if metrics is not None:
        metrics.kb_suggestions.labels("portal", str(bool(found)).lower()).inc()
    return found


def find_article(article_id: str):
    """An article of the served KB by id, or None."""
    loaded = current_app.extensions["triage.state"].snapshot()
    return next((a for a in loaded.kb.articles if a.id == article_id), None)


@bp.get("/articles/<article_id>")
@login_required("requester")
def article(article_id: str):
    """One article's full text (opened in place); records the opening."""
    found = find_article(article_id)
    if found is None:
        return jsonify(ok=False, error="no such article", status=404), 404
    with get_store().session() as s:
        visit = _visit(s)
        if visit is not None and not visit.control:
            events.record(s, visit, "opened", article_id, now=utcnow())
    return jsonify(
        ok=True,
        article={
            "id": found.id,
            "title": found.title,
            "body": found.body,
            "attribution": found.attribution,
            "url": found.url,
        },
    )


@bp.post("/solved")
@login_required("requester")
def solved():
    """ "This solved it": the visit ends as a deflection."""
    article_id = request.form.get("article_id") or None
    with get_store().session() as s:
        visit = _visit(s)
        if visit is not None:
            events.finish(s, visit, "solved", article_id=article_id, now=utcnow())
    session.pop("portal_visit", None)
    found = find_article(article_id) if article_id else None
    return render_template("portal/solved.html", article=found)


# ----------------------------------------------------------------- submitting
def read_form(form) -> tuple[dict, dict]:
    """The ticket payload from the form, and the problems to show next to the fields."""
    values = {k: form.get(k, "").strip() for k in ("subject", "details", "affected", "people", "work")}
    errors = {}
    if not values["subject"]:
        errors["subject"] = "Please say in a few words what is wrong."
    if len(values["subject"]) > int(current_app.config.get("TRIAGE_MAX_SUBJECT_CHARS", 1000)):
        errors["subject"] = "Please keep the summary shorter."
    if len(values["details"]) > int(current_app.config.get("TRIAGE_MAX_TEXT_CHARS", 50_000)):
        errors["details"] = "Please shorten the description."
    for key, choices, message in (
        ("affected", AFFECTED, "Please choose what is affected."),
        ("people", PEOPLE, "Please say who is affected."),
        ("work", WORK, "Please say whether you can work."),
    ):
        if values[key] not in {c[0] for c in choices}:
            errors[key] = message
    return values, errors


def ticket_payload(values: dict, requester: str, shown: dict) -> dict:
    """Plain-language answers → the ticket's mandatory fields (service, impact × urgency)."""
    impact = dict((c[0], c[2]) for c in PEOPLE)[values["people"]]
    urgency = dict((c[0], c[2]) for c in WORK)[values["work"]]
    service = dict((c[0], c[2]) for c in AFFECTED)[values["affected"]]
    return {
        "subject": values["subject"],
        "body": values["details"],
        "channel": "portal",
        "requester": requester,
        "affected_service": service,
        "priority": PriorityMatrix().priority(impact, urgency),
        "extra": {
            "impact": impact,
            "urgency": urgency,
            "portal": {"shown_articles": shown["shown"], "opened_articles": shown["opened"]},
        },
    }


@bp.post("/submit")
@accepts_uploads
@login_required("requester")
def submit():
    """ "I still need help": the ticket goes through the same intake as the API (files too)."""
    limiter.spend("ticket_create", f"requester:{g.user['id']}")
    values, errors = read_form(request.form)
    store = get_store()
    if errors:
        return _form_again(store, values, errors)
    uploads = [f for f in request.files.getlist("file") if f and f.filename]
    triager, rules, encoder = serving_components()
    try:
        with store.session() as s:
            visit = _visit(s, start=True)
            payload = ticket_payload(values, g.user["id"], events.articles_of(s, visit.id))
            payload["extra"]["portal"]["visit"] = visit.id
            payload["extra"]["portal"]["control"] = visit.control
            result = intake(
                s,
                payload,
                actor=g.user["id"],
                triager=triager,
                ruleset=rules,
                encoder=encoder,
                idempotency_key=f"portal:{visit.id}",
                now=utcnow(),
            )
            if result.created:
                save_uploads(s, result.ticket, uploads, source="portal", by=g.user["id"])
            events.finish(s, visit, "submitted", ticket_id=result.ticket.id, now=utcnow())
            ticket_id = result.ticket.id
    except AttachmentRefused as exc:  # nothing was stored: the form comes back as it was
        return _form_again(store, values, {"file": f"{exc.message}. Nothing was sent yet."})
    session.pop("portal_visit", None)
    flash(f"Thank you. Your request number is {ticket_id}; we will reply here and by e-mail.", "ok")
    return redirect(url_for("portal.ticket", ticket_id=ticket_id))


def _form_again(store, values: dict, errors: dict):
    with store.session() as s:
        visit = _visit(s, start=True)
        control = visit.control
    status = 413 if "over the limit" in errors.get("file", "") else 422
    return render_template(
        "portal/start.html",
        affected=AFFECTED,
        people=PEOPLE,
        work=WORK,
        control=control,
        form=values,
        errors=errors,
    ), status


# ----------------------------------------------------------------- following my tickets
@bp.get("/tickets")
@login_required("requester")
def my_tickets():
    with get_store().session() as s:
        viewer = access.Viewer("requester", g.user["id"])
        rows = access.list_visible(s, viewer, limit=200)
        items = [tickets.to_dict(t) for t in sorted(rows, key=lambda t: -t.id)]
    return render_template("portal/tickets.html", tickets=items)


@bp.get("/tickets/<id:ticket_id>")
@login_required("requester")
def ticket(ticket_id: int):
    """One of my tickets with its public conversation (someone else's answers 404)."""
    with get_store().session() as s:
        row = access.visible(s, access.Viewer("requester", g.user["id"]), ticket_id)
        item = tickets.to_dict(row)
        comments = [
            {"author": c.author, "body": c.body, "at": c.created_at, "mine": c.author == g.user["id"]}
            for c in tickets.comments(s, ticket_id, public_only=True)
        ]
        files = current_files_of(s, ticket_id, staff=False)
        found = satisfaction.of_ticket(s, ticket_id)
        survey = None if found is None else {"rating": found.rating, "comment": found.comment}
    return render_template("portal/ticket.html", ticket=item, comments=comments, files=files, survey=survey)


@bp.post("/tickets/<id:ticket_id>/reply")
@accepts_uploads
@login_required("requester")
def reply(ticket_id: int):
    """A message to the desk, with files if any (all or nothing: a refused file keeps neither)."""
    text = request.form.get("body", "").strip()
    uploads = [f for f in request.files.getlist("file") if f and f.filename]
    if not text and not uploads:
        flash("Please write a message before sending.", "error")
        return redirect(url_for("portal.ticket", ticket_id=ticket_id))
    try:
        with get_store().session() as s:
            row = access.visible(s, access.Viewer("requester", g.user["id"]), ticket_id, lock=True)
            comment, _ = tickets.add_comment(
                s,
                row,
                author=g.user["id"],
                body=text[:50_000] or "(files attached)",
                public=True,
                channel="portal",
                by_agent=False,
                now=utcnow(),
            )
            save_uploads(s, row, uploads, source="portal", by=g.user["id"], comment_id=comment.id)
            tickets.customer_replied(s, row, actor=g.user["id"], now=utcnow())  # pending → work
    except AttachmentRefused as exc:
        flash(f"Nothing was sent: {exc.message}", "error")
        return redirect(url_for("portal.ticket", ticket_id=ticket_id))
    flash("Your message was added.", "ok")
    return redirect(url_for("portal.ticket", ticket_id=ticket_id))
