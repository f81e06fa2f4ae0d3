"""Admin reports: model confidence (with the threshold controls), knowledge, SLA.

Admins only: a signed-in admin (page session), or an admin API key for the
exports (``Authorization: Bearer``). A threshold or mode change is a POST from
the confidence page (CSRF-checked by ``pages_security``), recorded in
``triage.store.policies`` with who and when; every worker applies it on its next
classification (``service/policy.py``). While the admin edits, ``reports.js``
asks ``/admin/reports/confidence/what-if`` for the holdout's estimate of the
proposed thresholds, so the effect is seen before saving.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from triage.reports.drift import JS_ALERT, PSI_ALERT
from triage.store import policies

from . import reports_data as data
from .auth import presented_key
from .pages_security import current_user, login_required, register_page_errors
from .store import get_store

bp = Blueprint("reports", __name__, url_prefix="/admin/reports")
register_page_errors(bp)
MAX_DAYS = 366


def admin_required(view):
    """A signed-in admin, or (no session) an admin API key; agents get 403."""
    page_view = login_required("admin")(view)

    @functools.wraps(view)
    def inner(*args, **kwargs):
        if current_user() is None and presented_key() is not None:
            ring = current_app.extensions["triage.auth"]
            entry = ring.lookup(presented_key()) if ring.required else None
            if ring.required and (entry is None or entry.role != "admin"):
                abort(403, description="the reports are for admins")
            g.user = {
                "role": "admin",
                "id": entry.name if entry else "dev",
                "name": entry.name if entry else "dev",
            }
            return view(*args, **kwargs)
        return page_view(*args, **kwargs)

    return inner


def _days() -> int:
    try:
        return max(1, min(MAX_DAYS, int(request.args.get("days", data.DEFAULT_DAYS))))
    except ValueError:
        return data.DEFAULT_DAYS


def _float_arg(name: str, default: float | None) -> float | None:
    """A number from the query string (``default`` when absent or not a number)."""
    raw = request.args.get(name)
    try:
        return default if raw in (None, "") else float(raw)
    except ValueError:
        return default


def _loaded():
    return current_app.extensions["triage.state"].snapshot()


# ----------------------------------------------------------------- confidence
def build_confidence() -> dict:
    loaded = _loaded()
    with get_store().session(readonly=True) as s:
        return data.confidence_report(
            s,
            loaded.bundle_path,
            manifest=loaded.triager.manifest,
            heads=[h for h in loaded.triager.heads],
            days=_days(),
            psi_alert=_float_arg("psi_alert", PSI_ALERT),
            js_alert=_float_arg("js_alert", JS_ALERT),
        )


@bp.get("/")
@admin_required
def index():
    return redirect(url_for("reports.confidence_page"))


@bp.get("/confidence")
@admin_required
def confidence_page():
    report = build_confidence()
    return render_template(
        "reports/confidence.html",
        report=report,
        charts=data.confidence_charts(report),
        days=_days(),
        modes=policies.MODES,
    )


@bp.get("/confidence.json")
@admin_required
def confidence_json():
    return jsonify(build_confidence())


@bp.get("/confidence.html")
@admin_required
def confidence_export():
    """The same report as one self-contained HTML file (styles inlined, charts inline SVG)."""
    report = build_confidence()
    page = render_template(
        "reports/confidence_export.html",
        report=report,
        charts=data.confidence_charts(report),
        css=export_css(),
    )
    name = f"confidence-{report.get('bundle_id') or 'report'}.html"
    return Response(
        page, mimetype="text/html", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def export_css() -> str:
    """Both stylesheets, to inline in an exported file (no server to fetch them from)."""
    static = current_app.static_folder
    parts = []
    for name in ("app.css", "reports.css"):
        try:
            with open(f"{static}/{name}", encoding="utf-8") as fh:
                parts.append(fh.read())
        except OSError:
            continue
    return "\n".join(parts).replace("</", "<\\/")


@bp.get("/confidence/what-if")
@admin_required
def what_if():
    """Holdout estimates for proposed thresholds of one class (or a head's mode)."""
    head = request.args.get("head", "")
    label = request.args.get("label") or None
    mode = request.args.get("mode") or None
    try:
        values = policies.check_thresholds(request.args)
        if mode is not None:
            policies.check_mode(mode)
    except ValueError as exc:
        return jsonify({"ok": False, "error": str(exc), "errors": [], "status": 422}), 422
    loaded = _loaded()
    if head not in loaded.triager.heads:
        return jsonify({"ok": False, "error": f"unknown head {head!r}", "errors": [], "status": 404}), 404
    with get_store().session(readonly=True) as s:
        body = data.what_if_for(loaded.bundle_path, s, head, label, values["apply"], values["suggest"], mode)
    return jsonify({"ok": True, **body})


@bp.post("/confidence/policy")
@login_required("admin")
def change_policy():
    """Record one change (class thresholds, head mode, or back to the bundle's)."""
    form = request.form
    head, kind = form.get("head", ""), form.get("kind", "")
    loaded = _loaded()
    if head not in loaded.triager.heads:
        abort(422, description=f"unknown head {head!r}")
    who, note = g.user["id"], (form.get("note") or "").strip()[:500] or None
    try:
        with get_store().session() as s:
            message = _apply_change(s, head, kind, form, who, note, loaded.bundle_id)
    except ValueError as exc:
        flash(f"Not saved: {exc}", "error")
        return redirect(url_for("reports.confidence_page", _anchor=f"head-{head}"))
    flash(message, "ok")
    return redirect(url_for("reports.confidence_page", _anchor=f"head-{head}"))


def _apply_change(s, head: str, kind: str, form, who: str, note: str | None, bundle_id: str) -> str:
    if kind == "mode":
        change = policies.set_mode(s, head, form.get("mode"), by=who, bundle_id=bundle_id, note=note)
        return f"Saved: {head} is now '{form.get('mode')}' (change {change.id})."
    label = (form.get("label") or "").strip()
    if not label:
        raise ValueError("choose a class")
    if kind == "reset":
        change = policies.set_class(s, head, label, None, by=who, bundle_id=bundle_id, note=note)
        return f"Saved: {head}/{label} uses the bundle's thresholds again (change {change.id})."
    if kind != "class":
        raise ValueError(f"unknown change {kind!r}")
    change = policies.set_class(s, head, label, form, by=who, bundle_id=bundle_id, note=note)
    return f"Saved: new thresholds for {head}/{label} (change {change.id})."


# ----------------------------------------------------------------- knowledge, SLA
def build_knowledge() -> dict:
    loaded = current_app.extensions["triage.state"].current
    with get_store().session(readonly=True) as s:
        return data.knowledge_report(
            s,
            getattr(loaded, "kb", None),
            getattr(loaded, "encoder", None),
            days=_days(),
            threshold=_float_arg("gap_threshold", None),
        )


@bp.get("/knowledge")
@admin_required
def knowledge_page():
    report = build_knowledge()
    return render_template(
        "reports/knowledge.html", report=report, charts=data.knowledge_charts(report), days=_days()
    )


@bp.get("/knowledge.json")
@admin_required
def knowledge_json():
    return jsonify(build_knowledge())


def build_sla() -> dict:
    with get_store().session(readonly=True) as s:
        return data.sla_report(s, days=_days(), now=datetime.now(timezone.utc))


@bp.get("/sla")
@admin_required
def sla_page():
    report = build_sla()
    return render_template("reports/sla.html", report=report, charts=data.sla_charts(report), days=_days())


@bp.get("/sla.json")
@admin_required
def sla_json():
    return jsonify(build_sla())


def build_desk() -> dict:
    with get_store().session(readonly=True) as s:
        return data.desk_report(s, days=_days(), now=datetime.now(timezone.utc))


@bp.get("/desk")
@admin_required
def desk_page():
    """The desk's performance per team, agent, category and priority (n beside every rate)."""
    report = build_desk()
    return render_template("reports/desk.html", report=report, charts=data.desk_charts(report), days=_days())


@bp.get("/desk.json")
@admin_required
def desk_json():
    return jsonify(build_desk())
