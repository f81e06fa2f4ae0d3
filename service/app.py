"""The Flask application factory (Flask tutorial style: ``create_app(test_config=None)``).

Configuration: the declared defaults → ``TRIAGE_*`` environment → ``test_config``
(see ``service/settings.py`` and docs/SETTINGS.md). Everything the app holds lives
in ``app.extensions`` (``triage.state``, ``triage.auth``, ``triage.metrics``,
``triage.store`` from ``service/store.py``);
nothing is loaded at import time, so importing ``service`` is cheap and tests
build as many independent apps as they like.

Areas add their blueprint with one line in ``BLUEPRINTS``.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
import uuid

from flask import Flask, g, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

from triage import cache_dir

from . import errors, health, limiter, mailer, settings, shadow, slow_clients, store, validation
from .auth import KeyRing
from .state import ServiceState

# "module:attribute" of every blueprint; the ticketing area adds "service.tickets:bp".
BLUEPRINTS = [
    "service.health:bp",
    "service.classify:bp",
    "service.kb_api:bp",
    "service.admin:bp",
    "service.openapi:bp",
    "service.tickets:bp",
    "service.pages_security:bp",
    "service.portal:bp",
    "service.agent:bp",
    "service.reports:bp",
    "service.shadow:bp",
    "service.desk:bp",
    "service.attachments:bp",
    "service.satisfaction:bp",
    "service.mail_admin:bp",
    "service.desk:api",
    "service.webhooks_api:bp",
]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("service.access")


def create_app(test_config: dict | None = None) -> Flask:
    """Build an app; loading of the bundle follows ``TRIAGE_LOAD`` (sync/background/off)."""
    app = Flask(__name__)
    app.config.update(settings.resolve(test_config))
    cache_dir.use(app.config["TRIAGE_CACHE_DIR"])  # the library's caches follow the settings
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["TRIAGE_MAX_BODY_BYTES"])
    app.json.sort_keys = False  # keep "ok" first, heads in the bundle's order
    app.session_interface = CookieSessions()

    errors.register(app)
    app.extensions["triage.auth"] = KeyRing.from_config(app.config)
    state = ServiceState(app.config)
    app.extensions["triage.state"] = state
    health.init_app(app)
    mailer.init_app(app)
    _init_request_ids(app)
    validation.init_app(app)  # the <id:...> converter, before any route uses it
    limiter.init_app(app)
    slow_clients.init_app(app)
    for spec in BLUEPRINTS:
        module, _, attr = spec.partition(":")
        app.register_blueprint(getattr(importlib.import_module(module), attr))
    store.init_app(app)  # background threads start here, never on import or registration
    shadow.init_app(app)
    _start_loading(app, state)
    return app


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer built once per key.

    Flask opens the session on every request (API calls and ``/livez`` included) and built
    an itsdangerous serializer each time to do so (~20 µs: a third of ``/livez``'s Flask
    work). It holds nothing per request, so one per (secret key, fallbacks) serves every
    thread; a changed key or fallback list is a new entry, signed and checked as before.
    """

    def __init__(self) -> None:
        self._serializers: dict[tuple, object] = {}

    def get_signing_serializer(self, app: Flask):
        if not app.secret_key:
            return None
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        found = self._serializers.get(key)
        if found is None:
            found = self._serializers.setdefault(key, super().get_signing_serializer(app))
        return found


def _start_loading(app: Flask, state: ServiceState) -> None:
    mode = app.config.get("TRIAGE_LOAD", "background")
    state.note_reload_token()  # before loading: a sibling's reload meanwhile is still followed
    if mode == "sync":
        state.load()  # a broken bundle or rules file stops start-up here
    elif mode == "background":
        state.load_in_background()
    elif mode != "off":
        raise settings.ConfigError(f"TRIAGE_LOAD: expected sync, background or off, got {mode!r}")
    state.start_watcher()
    from . import fleet

    fleet.start_follower(app, state)


def _init_request_ids(app: Flask) -> None:
    """Accept a sane ``X-Request-Id`` or make one; echo it and put it in the access log."""

    @app.before_request
    def _assign():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        g.request_start = time.perf_counter()

    @app.after_request
    def _echo(response):
        rid = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-Id"] = rid
        started = g.get("request_start")
        ms = (time.perf_counter() - started) * 1000 if started else 0.0
        access_log.info("%s %s %s %.1fms rid=%s", request.method, request.path, response.status_code, ms, rid)
        return response


class RequestIdFilter(logging.Filter):
    """Adds ``%(request_id)s`` to every log record (entry points attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] rid=%(request_id)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """For entry points only (``triage serve``, gunicorn config): one handler with request ids."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level.upper() != "DEBUG":  # alembic logs 9 lines per worker start ("setup plugin ...")
        logging.getLogger("alembic").setLevel(logging.WARNING)
