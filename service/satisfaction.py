"""Satisfaction: the one-click rating from the resolution mail and the portal, and its report.

``GET /rate/<token>?rating=N`` records the rating in one click (the token in
the mail is the proof; no sign-in), then offers a comment box. One answer per
ticket: a later click shows the answer given, and within an hour of it offers to
correct it (a button: mail scanners that follow every link answer first). Signed-in customers rate
on the portal ticket page too. ``/admin/reports/satisfaction`` (and its
``.json``) reports per team, agent and category: answers n, mean, the share
satisfied (4-5) with its 95% Wilson interval.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for

from triage.store import access
from triage.store import satisfaction as surveys
from triage.store.tables import utcnow

from .auth import require_role
from .errors import ApiError, field_error
from .pages_security import add_nav, error_page, login_required, register_page_errors
from .store import get_store

bp = Blueprint("satisfaction", __name__)
register_page_errors(bp)
bp.record_once(lambda s: add_nav(s.app, "Satisfaction", "satisfaction.report_page"))
GROUPS = ("team", "agent", "category")


def _rating(raw) -> int | None:
    try:
        value = int(str(raw))
    except ValueError:
        return None
    return value if value in surveys.SCALE else None


@bp.get("/rate/<token>")
def rate(token: str):
    rating = _rating(request.args.get("rating", ""))
    with get_store().session() as s:
        survey = surveys.by_token(s, token)
        if survey is None:
            return error_page(404, "This rating link is not valid.")
        fresh = rating is not None and surveys.answer(s, survey, rating, now=utcnow())
        # another rating than the recorded one, soon after it: offer the correction (POST)
        offer = (
            None
            if fresh
            or rating in (None, survey.rating)
            or survey.answered_at is None
            or survey.answered_at <= utcnow() - surveys.CHANGE_WINDOW
            else rating
        )
        state = {"rating": survey.rating, "comment": survey.comment, "ticket_id": survey.ticket_id}
    return render_template(
        "satisfaction/rate.html", token=token, fresh=fresh, scale=surveys.SCALE, offer=offer, **state
    )


@bp.post("/rate/<token>")
def rate_post(token: str):
    """The rating (if not given yet) and the optional comment, from the thank-you page's form."""
    rating, comment = _rating(request.form.get("rating", "")), request.form.get("comment", "")
    with get_store().session() as s:
        survey = surveys.by_token(s, token)
        if survey is None:
            return error_page(404, "This rating link is not valid.")
        if survey.rating is None and rating is not None:
            surveys.answer(s, survey, rating, comment.strip()[:2000], now=utcnow())
        elif request.form.get("change") == "1" and rating is not None:
            if not surveys.change(s, survey, rating, now=utcnow()):
                flash("Your rating can no longer be changed.", "error")
                return redirect(url_for("satisfaction.rate", token=token))
        elif survey.rating is not None and not survey.comment and comment.strip():
            survey.comment = comment.strip()[:2000]  # the one comment of this answer
    flash("Thank you for your answer.", "ok")
    return redirect(url_for("satisfaction.rate", token=token))


@bp.post("/portal/tickets/<id:ticket_id>/rate")
@login_required("requester")
def portal_rate(ticket_id: int):
    rating = _rating(request.form.get("rating", ""))
    if rating is None:
        flash("Please choose a rating from 1 to 5.", "error")
        return redirect(url_for("portal.ticket", ticket_id=ticket_id))
    with get_store().session() as s:
        access.visible(s, access.Viewer("requester", g.user["id"]), ticket_id)
        survey = surveys.of_ticket(s, ticket_id)
        if survey is None:
            flash("This request is not resolved yet.", "error")
        elif surveys.answer(s, survey, rating, request.form.get("comment", "").strip()[:2000], now=utcnow()):
            flash("Thank you for your rating.", "ok")
        else:
            flash("You rated this request already.", "error")
    return redirect(url_for("portal.ticket", ticket_id=ticket_id))


def _report(by: str) -> list[dict]:
    if by not in GROUPS:
        raise ApiError(
            422, "unknown grouping", [field_error("by", "not a grouping", expected="|".join(GROUPS), got=by)]
        )
    with get_store().session(readonly=True) as s:
        return surveys.report(s, by)


@bp.get("/admin/reports/satisfaction")
@login_required("admin")
def report_page():
    tables = {by: _report(by) for by in GROUPS}
    return render_template("satisfaction/report.html", tables=tables)


@bp.get("/v1/reports/satisfaction")
@require_role("agent")
def report_json():
    by = request.args.get("by", "team")
    return jsonify({"ok": True, "by": by, "rows": _report(by)})


def OPENAPI_PATHS(config: dict) -> dict:  # noqa: N802 - read by service.openapi
    from .openapi import INT, _json, _obj, _op
    from .tickets_openapi import AUTH

    row = _obj(
        {
            "n": INT,
            "asked": INT,
            "mean": {"type": "number"},
            "satisfied": {"type": "number"},
            "satisfied_low": {"type": "number"},
            "satisfied_high": {"type": "number"},
        },
        ["n", "mean", "satisfied"],
    )
    by = {"name": "by", "in": "query", "required": False, "schema": {"enum": list(GROUPS)}}
    return {
        "/v1/reports/satisfaction": {
            "get": _op(
                "Satisfaction per team, agent or category: n, mean, share satisfied (4-5) with its 95% "
                "Wilson interval",
                {
                    "200": _json(
                        _obj(
                            {
                                "ok": {"const": True},
                                "by": {"type": "string"},
                                "rows": {"type": "array", "items": row},
                            },
                            ["ok", "by", "rows"],
                        ),
                        "the report",
                    )
                },
                (422,) + AUTH,
                ["agent", "admin"],
                parameters=[by],
            )
        }
    }
