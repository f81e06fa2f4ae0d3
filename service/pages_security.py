"""Security of the human-facing pages: headers, page sessions, sign-in, CSRF.

The JSON API authenticates every call with an API key (``service/auth.py``); a
browser cannot hold such a key safely, so people get a signed session cookie
instead, carrying the *same* roles: ``agent`` and ``admin`` sign in with their
API key (the key's name is their agent id, as on the API), customers sign in
as ``requester`` with their e-mail address (``TRIAGE_PORTAL_EMAIL_SIGNIN``;
meant for demos and for deployments behind a single-sign-on proxy).

Because a cookie is sent by the browser on its own, every state-changing page
request carries a CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) bound to the session. Every response gets a strict
Content-Security-Policy: scripts only from our own origin and never inline, so
even text that slipped through escaping could not run.
"""
from __future__ import annotations

import functools
import hmac
import re
import secrets
from urllib.parse import urlencode

from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from werkzeug.routing import BuildError

bp = Blueprint("pages_security", __name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
STAFF_ROLES = ("agent", "admin")
# Top-bar links of other areas, shown only once their endpoint exists: (label, endpoint, roles).
DEFAULT_NAV = [("Reports", "reports.confidence_page", ("admin",))]
_EMAIL = re.compile(r"^[^@\s<>\"']{1,200}@[^@\s<>\"']{1,120}\.[^@\s<>\"']{1,40}$")


# ----------------------------------------------------------------- app wiring
@bp.record_once
def _configure(state) -> None:
    """Session cookie settings and the signing key (random per process when unset)."""
    app = state.app
    app.secret_key = app.config.get("TRIAGE_SECRET_KEY") or secrets.token_hex(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="triage_session",
                      SESSION_COOKIE_SECURE=bool(app.config.get("TRIAGE_SESSION_COOKIE_SECURE")))
    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user,
                                 nav_links=nav_links)
    app.extensions.setdefault("triage.nav", list(DEFAULT_NAV))


def add_nav(app, label: str, endpoint: str, roles: tuple[str, ...] = ("admin",)) -> None:
    """Another area's page in the top bar, e.g. in its blueprint:
    ``bp.record_once(lambda s: add_nav(s.app, "Reports", "reports.confidence_page"))``."""
    entries = app.extensions.setdefault("triage.nav", list(DEFAULT_NAV))
    if not any(e[1] == endpoint for e in entries):
        entries.append((label, endpoint, tuple(roles)))


def nav_links() -> list[dict]:
    """The extra top-bar links the signed-in person may follow (registered endpoints only)."""
    user = current_user()
    if user is None:
        return []
    links = []
    for label, endpoint, roles in current_app.extensions.get("triage.nav", []):
        if endpoint not in current_app.view_functions or \
                not (user["role"] in roles or user["role"] == "admin"):
            continue
        try:
            links.append({"label": label, "endpoint": endpoint, "href": url_for(endpoint)})
        except BuildError:  # needs arguments: not a top-bar page
            continue
    return links


@bp.after_app_request
def _security_headers(response):
    """Every response, API or page: the strict CSP and friends (pages never inline scripts)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.before_app_request
def _check_csrf():
    """Refuse a state-changing page request without this session's token (API calls exempt)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.path.startswith("/v1/"):
        return None
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        return error_page(400, "This form expired or did not come from this site. "
                               "Please go back, reload the page and try again.")
    return None


# ----------------------------------------------------------------- errors as pages
def error_page(status: int, message: str):
    """An HTML error page (the API keeps its JSON errors; people get a readable page)."""
    return render_template("error.html", status=status, message=message), status


def register_page_errors(blueprint: Blueprint) -> None:
    """Errors raised in a page blueprint render as HTML instead of the API's JSON."""
    from triage.errors import TriageError
    from werkzeug.exceptions import HTTPException

    from .errors import ApiError

    @blueprint.errorhandler(HTTPException)
    def _http(exc):
        return error_page(exc.code or 500, exc.description or exc.name)

    @blueprint.errorhandler(ApiError)
    def _api(exc):
        return error_page(exc.status, exc.message)

    @blueprint.errorhandler(TriageError)
    def _triage(exc):
        return error_page(int(getattr(exc, "status", 400)), exc.message)


# ----------------------------------------------------------------- helpers for pages
def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def current_user() -> dict | None:
    """``{"role", "id", "name"}`` of the signed-in person, or None."""
    user = session.get("user")
    return dict(user) if isinstance(user, dict) else None


def login_required(*roles: str):
    """Decorator for page views: sign in first (then come back); admin passes everywhere."""
    allowed = set(roles) | {"admin"}

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            user = current_user()
            if user is None:
                query = urlencode({"next": request.full_path.rstrip("?")})
                return redirect(f"{url_for('pages_security.signin')}?{query}")
            if user["role"] not in allowed:
                abort(403, description="your sign-in does not give access to this page")
            g.user = user
            return view(*args, **kwargs)
        return inner
    return wrap


def safe_next(target: str | None, default: str) -> str:
    """Only local paths: ``next`` must never send a person to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def home_for(user: dict) -> str:
    return url_for("agent.queues") if user["role"] in STAFF_ROLES else url_for("portal.start")


def _sign_in(role: str, ident: str, name: str) -> None:
    """A fresh session (no fixation) with a fresh CSRF token."""
    session.clear()
    session["user"] = {"role": role, "id": ident, "name": name}
    session["csrf"] = secrets.token_urlsafe(32)


def _staff_identity(key: str) -> tuple[str, str] | None:
    """(role, agent id) for an API key of a person; None when unknown or a pipeline key."""
    ring = current_app.extensions["triage.auth"]
    if not ring.required:  # development: the typed text names the (admin) user
        return ("admin", key[:100]) if key else None
    entry = ring.lookup(key)
    if entry is None or entry.role not in STAFF_ROLES:
        return None
    return entry.role, entry.name


# ----------------------------------------------------------------- routes
@bp.get("/")
def index():
    user = current_user()
    return redirect(home_for(user) if user else url_for("portal.start"))


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """One page, two doors: customers by e-mail, staff by their API key."""
    email_ok = bool(current_app.config.get("TRIAGE_PORTAL_EMAIL_SIGNIN", True))
    nxt = request.values.get("next")
    if request.method == "POST":
        error = _handle_signin(request.form, email_ok)
        if error is None:
            return redirect(safe_next(nxt, home_for(current_user())))
        flash(error, "error")
    page = render_template("signin.html", next=safe_next(nxt, ""), email_ok=email_ok)
    return page, 200 if request.method == "GET" else 401


def _handle_signin(form, email_ok: bool) -> str | None:
    """Sign in from the form; the error message to show, or None on success."""
    if form.get("kind") == "staff":
        found = _staff_identity(form.get("key", "").strip())
        if found is None:
            return "That key is not a valid agent or admin key."
        _sign_in(found[0], found[1], found[1])
        return None
    if not email_ok:
        return "Customer sign-in by e-mail is turned off here."
    email = form.get("email", "").strip().lower()
    if not _EMAIL.match(email):
        return "Please enter your e-mail address, like name@example.com."
    _sign_in("requester", email, email)
    return None


@bp.post("/signout")
def signout():
    session.clear()
    return redirect(url_for("pages_security.signin"))
