"""Admin pages of the mail loop: what was (or would have been) sent, and what was refused.

``/admin/mail`` lists the outbox's mails, newest first; one mail opens as its
rendered text with its links listed, so without an SMTP server (the demo) an
admin can follow a customer's sign-in or rating link. With SMTP configured a
sign-in link is hidden: it is the customer's proof of their address. ``/admin/mail/refused``
is the dead-letter list of intake: each refused message with its reason, its
raw bytes for download, and a replay button.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, flash, redirect, render_template, url_for

from triage.errors import TriageError
from triage.store import inbox, mail_log, outbound
from triage.store.tables import OutboxMessage

from .mailer import get_mailer
from .pages_security import add_nav, login_required, register_page_errors
from .state import serving_components
from .store import get_store

bp = Blueprint("mail_admin", __name__, url_prefix="/admin/mail")
register_page_errors(bp)
bp.record_once(lambda s: add_nav(s.app, "Mail", "mail_admin.outbox"))
_URL = re.compile(r"https?://[^\s<>\"']+")


@bp.get("/")
@login_required("admin")
def outbox():
    with get_store().session(readonly=True) as s:
        mails = outbound.listing(s)
    return render_template("admin/mail_outbox.html", mails=mails)


@bp.get("/<id:mail_id>")
@login_required("admin")
def mail(mail_id: int):
    """One mail as the recipient reads it (plain-text part), links listed to follow."""
    with get_store().session(readonly=True) as s:
        row = s.get(OutboxMessage, mail_id)
        if row is None or row.kind != outbound.KIND:
            return render_template("error.html", status=404, message="no such mail"), 404
        data = {
            "id": row.id,
            "message_id": row.message_id or "<not-yet-sent@triage>",
            "ticket_id": row.ticket_id,
            **row.payload,
        }
    if data.get("template") == "signin" and current_app.config.get("TRIAGE_SMTP_HOST"):
        # With real mail the link is the customer's proof of their address: an admin who
        # could follow it could act as the customer. Only the demo's mail folder shows it.
        data["context"] = {**data.get("context", {}), "signin_path": "/signin/(hidden)"}
    message = get_mailer().composer.compose(data)
    text = message.get_body(preferencelist=("plain",)).get_content()
    headers = [(k, str(v)) for k, v in message.items()]
    return render_template(
        "admin/mail_one.html",
        mail=data,
        headers=headers,
        text=text,
        links=list(dict.fromkeys(_URL.findall(text))),
    )


@bp.get("/refused")
@login_required("admin")
def refused():
    with get_store().session(readonly=True) as s:
        rows = mail_log.listing(s, include_replayed=True)
    return render_template("admin/mail_refused.html", rows=rows)


@bp.get("/refused/<id:refusal_id>.eml")
@login_required("admin")
def raw(refusal_id: int):
    with get_store().session(readonly=True) as s:
        row = s.get(mail_log.MailRefusal, refusal_id)
        data = bytes(row.raw) if row is not None else None
    if data is None:
        return render_template("error.html", status=404, message="no such message"), 404
    return Response(
        data,
        mimetype="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="refused-{refusal_id}.eml"'},
    )


@bp.post("/refused/<id:refusal_id>/replay")
@login_required("admin")
def replay(refusal_id: int):
    triager, rules, encoder = serving_components()
    try:
        result = inbox.replay(get_store(), refusal_id, triager=triager, ruleset=rules, encoder=encoder)
        flash(
            f"Message {refusal_id} replayed: {result.outcome}"
            + (f", ticket {result.ticket.id}" if result.ticket is not None else ""),
            "ok",
        )
    except TriageError as exc:
        flash(exc.message, "error")
    return redirect(url_for("mail_admin.refused"))
