"""Security of the human-facing pages: headers, page sessions, sign-in, CSRF.

The JSON API authenticates every call with an API key (``service/auth.py``); a
browser cannot hold such a key safely, so people get a signed session cookie
instead, carrying the *same* roles: ``agent`` and ``admin`` sign in with their
API key (the key's name is their agent id, as on the API), customers sign in
as ``requester`` by a one-time link mailed to their address (signed, single
use, 15 minutes, rate-limited per address and per client). Typing an address
alone signs in only under ``TRIAGE_PORTAL_EMAIL_SIGNIN`` (demos; logged loudly).
Sessions live on the server too (``service/sessions.py``): signing out revokes
the session, so a captured cookie stops working.

Because a cookie is sent by the browser on its own, every state-changing page
request carries a CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) bound to the session. Every response gets a strict
Content-Security-Policy: scripts only from our own origin and never inline, so
even text that slipped through escaping could not run.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import secrets
import unicodedata
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.routing import BuildError

from triage.store import outbound
from triage.store import signin as signin_store
from triage.store.tables import utcnow

from . import limiter, sessions

bp = Blueprint("pages_security", __name__)
log = logging.getLogger("service.pages_security")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
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
    """Session cookie settings and the signing key (one key for every worker, see sessions)."""
    app = state.app
    app.secret_key = sessions.secret_key(app.config)
    if app.config.get("TRIAGE_PORTAL_EMAIL_SIGNIN"):
        log.warning(
            "TRIAGE_PORTAL_EMAIL_SIGNIN is on: ANYONE can sign in to the portal as ANY "
            "customer by typing an address, and read and answer their tickets. "
            "Use this for demos only."
        )
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="triage_session",
        SESSION_COOKIE_SECURE=bool(app.config.get("TRIAGE_SESSION_COOKIE_SECURE")),
    )
    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user, nav_links=nav_links)
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
        if endpoint not in current_app.view_functions or not (
            user["role"] in roles or user["role"] == "admin"
        ):
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
    if request.routing_exception is not None:
        return None  # no such page or method: the 404/405 is the honest answer, not "expired"
    if getattr(current_app.view_functions.get(request.endpoint), "accepts_uploads", False):
        lift_body_limit()  # before the form is parsed here: a page form carrying files
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        return error_page(
            400,
            "This form expired or did not come from this site. "
            "Please go back, reload the page and try again.",
        )
    return None


# ----------------------------------------------------------------- uploads
def lift_body_limit() -> None:
    """This request only: a body as large as a ticket's attachments may be (plus the form)."""
    request.max_content_length = int(current_app.config["TRIAGE_ATTACHMENT_TICKET_MAX_BYTES"]) + 1_048_576


def accepts_uploads(view):
    """Mark a page view whose form carries files (the CSRF check lifts the body limit first)."""
    view.accepts_uploads = True
    return view


# ----------------------------------------------------------------- errors as pages
def error_page(status: int, message: str):
    """An HTML error page (the API keeps its JSON errors; people get a readable page)."""
    return render_template("error.html", status=status, message=message), status


def register_page_errors(blueprint: Blueprint) -> None:
    """Errors raised in a page blueprint render as HTML instead of the API's JSON."""
    from triage.errors import TriageError
    from werkzeug.exceptions import HTTPException

    from .errors import ApiError

    from .errors import error_response, too_large_message

    def _api_path() -> bool:  # a page blueprint's /v1 route answers in the API's one shape
        return request.path.startswith("/v1/")

    @blueprint.errorhandler(HTTPException)
    def _http(exc):
        message = too_large_message() if exc.code == 413 else exc.description or exc.name
        if _api_path():
            return error_response(exc.code or 500, message)
        return error_page(exc.code or 500, message)

    @blueprint.errorhandler(ApiError)
    def _api(exc):
        if _api_path():
            return error_response(exc.status, exc.message, exc.errors, exc.headers)
        body, status = error_page(exc.status, exc.message)
        return body, status, exc.headers  # e.g. Retry-After of a 429

    @blueprint.errorhandler(TriageError)
    def _triage(exc):
        status = int(getattr(exc, "status", 400))
        if _api_path():
            return error_response(status, exc.message, [exc.to_dict()] if exc.details else [])
        return error_page(status, exc.message)


# ----------------------------------------------------------------- helpers for pages
def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def current_user() -> dict | None:
    """``{"role", "id", "name"}`` of the signed-in person, or None (also once signed out elsewhere)."""
    if "triage_user" in g:
        return g.triage_user
    user = session.get("user")
    if isinstance(user, dict) and not sessions.alive(_store()):
        session.clear()  # revoked on the server: the cookie alone is worth nothing
        user = None
    g.triage_user = dict(user) if isinstance(user, dict) else None
    return g.triage_user


def _store():
    from .store import get_store

    return get_store()


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


def safe_next(target: object, default: str) -> str:
    """Only same-site paths: ``next`` must never send a person to another site.

    Browsers drop tabs and newlines inside a URL, so ``/<TAB>/evil.example`` is
    ``//evil.example`` to them: any control, format or separator character (and a
    backslash, which some browsers read as ``/``) sends the person to ``default``
    instead, as does anything with a scheme or host. Never raises.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2000:
        return default
    if "\\" in target or any(unicodedata.category(c)[0] in "CZ" for c in target):
        return default
    if target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def home_for(user: dict) -> str:
    return url_for("agent.queues") if user["role"] in STAFF_ROLES else url_for("portal.start")


def _sign_in(role: str, ident: str, name: str) -> None:
    """A fresh session (no fixation) with a fresh CSRF token, open on the server."""
    sessions.open_session(_store(), role, ident, name)
    g.pop("triage_user", None)


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
    """One page, two doors: customers by a mailed link (or, in demos, by address), staff by key."""
    email_ok = bool(current_app.config.get("TRIAGE_PORTAL_EMAIL_SIGNIN"))
    nxt = request.values.get("next")
    if request.method == "POST":
        limiter.spend("signin", limiter.client_address())
        if request.form.get("kind") != "staff" and not email_ok:
            return _send_link(request.form.get("email", ""), safe_next(nxt, ""))
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
    email = form.get("email", "").strip().lower()
    if not _EMAIL.match(email):
        return "Please enter your e-mail address, like name@example.com."
    log.warning("demo sign-in: %s signed in by typing the address (TRIAGE_PORTAL_EMAIL_SIGNIN)", email)
    _sign_in("requester", email, email)
    return None


# ----------------------------------------------------------------- one-time links
def _links() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="triage-signin-link")


def _send_link(typed: str, nxt: str):
    """Queue a sign-in link to the address; the page says the same whatever the address."""
    email = typed.strip().lower()
    if not outbound.mail_address(email):
        flash("Please enter your e-mail address, like name@example.com.", "error")
        return render_template("signin.html", next=nxt, email_ok=False), 422
    limits = signin_store.LinkLimits(
        per_address=int(current_app.config["TRIAGE_SIGNIN_LINKS_PER_ADDRESS"]),
        per_client=int(current_app.config["TRIAGE_SIGNIN_LINKS_PER_CLIENT"]),
    )
    try:
        with _store().session() as s:
            nonce = signin_store.issue_link(s, email, request.remote_addr or "-", now=utcnow(), limits=limits)
            token = _links().dumps({"a": email, "n": nonce, "next": nxt})
            outbound.queue(
                s,
                "signin",
                [email],
                subject="Your sign-in link",
                context={"address": email, "signin_path": url_for("pages_security.link", token=token)},
            )
    except signin_store.TooManyRequests as exc:
        response = make_response(
            error_page(
                429,
                "Too many sign-in links were asked for. Please "
                "wait a few minutes and use the newest link "
                "you received.",
            )
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return render_template("signin_sent.html", address=email), 200


def _read_link(token: str) -> dict | None:
    try:
        data = _links().loads(token, max_age=int(signin_store.LINK_TTL.total_seconds()))
    except BadSignature:  # also SignatureExpired
        return None
    return data if isinstance(data, dict) and {"a", "n"} <= set(data) else None


@bp.route("/signin/link/<token>", methods=["GET", "POST"])
def link(token: str):
    """GET shows a button (mail scanners that follow links must not use them up); POST signs in."""
    data = _read_link(token)
    if data is None:
        return error_page(
            400,
            "This sign-in link is not valid or has expired (links last 15 "
            "minutes). Please ask for a new one.",
        )
    if request.method == "GET":
        return render_template("signin_link.html", token=token, address=data["a"])
    with _store().session() as s:
        fresh = signin_store.use_link(s, data["n"], data["a"], utcnow())
    if not fresh:
        return error_page(400, "This sign-in link was used already. Please ask for a new one.")
    _sign_in("requester", data["a"], data["a"])
    return redirect(safe_next(data.get("next"), url_for("portal.start")))


@bp.post("/signout")
def signout():
    sessions.close_session(_store())
    g.pop("triage_user", None)
    return redirect(url_for("pages_security.signin"))


register_page_errors(bp)  # a refused sign-in (429) is a page too, with its Retry-After
