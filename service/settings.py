"""Every ``TRIAGE_*`` setting of the service, declared as data.

Declaring settings as a list (name, default, type, doc) rather than scattering
``os.environ.get`` calls means one place says what can be configured, the
documentation (docs/SETTINGS.md) is generated from it, and a test fails when the
two drift apart. Precedence, as in Flask's tutorial app: these defaults, then the
``TRIAGE_*`` environment, then the ``test_config`` passed to ``create_app``.

Other areas add their settings by appending a ``Setting`` to ``SETTINGS`` and
running ``python -m service.settings > docs/SETTINGS.md``. Every ``TRIAGE_*`` name
anything reads (the service, the ``triage`` command, the notebooks, the tests) is
declared here: an undeclared one in the environment is refused with the list of
known names, so a typo never silently configures nothing. The library (``triage/``,
``training/``) never reads the environment; entry points resolve settings here and
pass them as arguments.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from triage.errors import ConfigError


def parse_bool(raw: str) -> bool:
    """Environment booleans: 1/true/yes/on and 0/false/no/off (anything else is an error)."""
    value = str(raw).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


def database_url(raw: str) -> str:
    """A store URL of a driver this project installs (a typo such as ``postgress://`` or
    ``postgresql+psycopg2://`` otherwise surfaces as a SQLAlchemy traceback at first use)."""
    if not raw.strip():
        return ""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        driver = make_url(raw).drivername
    except ArgumentError:
        driver = None
    if driver not in DATABASE_DRIVERS:
        raise ValueError(
            "a database URL such as sqlite:///var/triage.db or "
            "postgresql+psycopg://user@host:5432/dbname (drivers: " + ", ".join(DATABASE_DRIVERS) + ")"
        )
    return raw


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: Callable[[str], Any]
    doc: str

    @property
    def type_name(self) -> str:
        return {parse_bool: "bool", database_url: "a database URL"}.get(
            self.type, getattr(self.type, "__name__", "str")
        )

    def parse(self, raw: Any) -> Any:
        """Convert a raw (environment) value, naming the setting when it is malformed."""
        if not isinstance(raw, str):
            return raw
        try:
            return self.type(raw)
        except ValueError as exc:
            shown = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", raw)  # never echo a password
            raise ConfigError(f"setting {self.name}: expected {self.type_name}, got {shown!r} ({exc})")


SETTINGS: list[Setting] = [
    # -- what is served
    Setting(
        "TRIAGE_BUNDLE",
        "",
        str,
        "Model bundle folder to serve. Empty: the bundle named by `<models dir>/CHAMPION`, "
        "else the newest folder under the models dir.",
    ),
    Setting(
        "TRIAGE_MODELS_DIR",
        "models",
        str,
        "Folder holding model bundles and the `CHAMPION` pointer written by `triage promote`. "
        "Bundles (pickles: code) load only from here, symlinks resolved.",
    ),
    Setting(
        "TRIAGE_TRUSTED_BUNDLES",
        "",
        str,
        "Other folders bundles may be loaded from, separated by `:` or `,` "
        "(`triage serve --trust PATH` adds one). Empty: the models dir only.",
    ),
    Setting(
        "TRIAGE_BUNDLE_SIGNING_KEY",
        "",
        str,
        "Secret key signing bundles: `triage train`/`retrain` write an HMAC over the "
        "checksums into the manifest, and serving refuses unsigned or tampered bundles. "
        "Keep it out of the models folder and out of git. Empty: no signatures.",
    ),
    Setting(
        "TRIAGE_DEMO_KB_PATH",
        "data/demo/kb",
        str,
        "Articles served when `TRIAGE_KB_PATH` is empty and the bundle has no KB, if the "
        "folder exists (the demo's).",
    ),
    Setting(
        "TRIAGE_KB_PATH",
        "",
        str,
        "Knowledge-base articles: a JSON Lines file or a folder of Markdown files. Empty: the "
        "bundle's own KB if it has one, else `data/demo/kb` when it exists.",
    ),
    Setting(
        "TRIAGE_RULES_PATH",
        "",
        str,
        "Rules / SLA policy YAML. Empty: the defaults shipped in `triage/defaults/rules.yaml`. "
        "A broken file stops the service from becoming ready.",
    ),
    Setting(
        "TRIAGE_DESK_PATH",
        "",
        str,
        "The desk file (teams, agents, queues; see `triage desk apply`). Set: every team the "
        "rules route to and every class of the bundle's team head must be a desk team (or be "
        "mapped under `team_map`), else the service does not become ready; intake maps model "
        "team labels through `team_map`. Empty: no check.",
    ),
    Setting(
        "TRIAGE_ENCODER",
        "",
        str,
        "Override the bundle's encoder kind at serving time, e.g. `minilm-onnx` for the int8 "
        "ONNX MiniLM (2-3x faster). Empty: the encoder the bundle was trained with.",
    ),
    Setting(
        "TRIAGE_LOAD",
        "background",
        str,
        "When to load the bundle, KB and rules: `background` (start answering /livez at once, "
        "/readyz turns 200 when loaded), `sync` (load inside create_app: what `triage serve` sets "
        "for its gunicorn workers unless told otherwise) or `off` (tests).",
    ),
    # -- access
    Setting(
        "TRIAGE_AUTH",
        True,
        parse_bool,
        "Require an API key on /v1 endpoints. Turn off only for local development.",
    ),
    Setting(
        "TRIAGE_API_KEYS_FILE",
        "",
        str,
        'JSON file of API keys kept outside git: `[{"name", "role", "sha256"}]` with '
        "role intake, agent or admin. Make entries with `python -m service.auth KEY ROLE NAME`.",
    ),
    Setting(
        "TRIAGE_API_KEYS",
        "",
        str,
        "Extra keys as `key:role,key:role` in plain text (tests and development; hashed on load).",
    ),
    # -- rate limits (service/limiter.py): rates are `limits` strings, several separated by `;`
    Setting(
        "TRIAGE_RATELIMIT_ENABLED",
        True,
        parse_bool,
        "Apply the rate limits below (429 with Retry-After beyond them).",
    ),
    Setting(
        "TRIAGE_RATELIMIT_STORAGE",
        "memory://",
        str,
        "Where counters live: `memory://` (per process: each gunicorn worker counts alone) "
        "or `redis://host:6379/0`, shared by every worker and machine.",
    ),
    Setting(
        "TRIAGE_RATELIMIT_PREFIX",
        "triage",
        str,
        "Prefix of the counters' keys (several services sharing one Redis).",
    ),
    Setting(
        "TRIAGE_RATELIMIT_SIGNIN",
        "10 per minute; 100 per hour",
        str,
        "Sign-in attempts (page form, one-time link requests included) per client address.",
    ),
    Setting(
        "TRIAGE_RATELIMIT_BAD_API_KEY",
        "20 per minute",
        str,
        "Wrong API keys per client address; past it the client gets 429, even with a good key.",
    ),
    Setting(
        "TRIAGE_RATELIMIT_SUGGEST",
        "240 per minute",
        str,
        "KB suggestions (`/v1/kb/suggest`, portal) per caller: API key + X-Requester, or the "
        "signed-in person.",
    ),
    Setting(
        "TRIAGE_RATELIMIT_TICKET_CREATE",
        "60 per minute; 1000 per day",
        str,
        "New tickets per requester (API `requester`/X-Requester or portal user); without one, per API key.",
    ),
    # -- limits of one request
    Setting("TRIAGE_MAX_BODY_BYTES", 1_048_576, int, "Largest request body accepted; larger bodies get 413."),
    Setting(
        "TRIAGE_MAX_BATCH",
        64,
        int,
        "Most tickets in one `POST /v1/classify` batch (`maxItems`); more get 422.",
    ),
    Setting("TRIAGE_MAX_SUBJECT_CHARS", 1000, int, "Longest ticket subject accepted (422 beyond)."),
    Setting("TRIAGE_MAX_TEXT_CHARS", 50_000, int, "Longest ticket body accepted (422 beyond)."),
    Setting(
        "TRIAGE_MAX_WATCHERS",
        50,
        int,
        "Most `watchers` in one new ticket (422 beyond; they are inserted in one batch).",
    ),
    Setting("TRIAGE_MAX_TAGS", 20, int, "Most `tags` on one ticket, at intake or in a change (422 beyond)."),
    Setting(
        "TRIAGE_KB_THRESHOLD",
        "",
        str,
        "Relevance threshold of KB suggestions (a float). Empty: the KB's own measured default.",
    ),
    Setting("TRIAGE_KB_K", 3, int, "KB suggestions returned with each classified ticket."),
    Setting("TRIAGE_SUGGEST_MAX_K", 20, int, "Largest `k` accepted by `GET /v1/kb/suggest`."),
    Setting(
        "TRIAGE_SUGGEST_MAX_CHARS",
        20000,
        int,
        "Longest `q` accepted by `GET /v1/kb/suggest` "
        "(a request-size guard: longer queries are refused with 422). Queries past the "
        "encoder's window (100 words) are not refused but cut: whole sentences from the start.",
    ),
    # -- running
    Setting(
        "TRIAGE_RUN_DIR",
        "",
        str,
        "Runtime folder shared by the gunicorn workers of one server (set by service/gunicorn_conf.py): "
        "an admin reload writes a token there so every worker swaps, not just the one that "
        "answered. Empty: reloads affect this process only.",
    ),
    Setting(
        "TRIAGE_FOLLOW_CHAMPION",
        0.0,
        float,
        "Seconds between checks of the fleet's champion in the database (`triage promote` "
        "and `rollback` publish it there when TRIAGE_DATABASE_URL is set); a new one is "
        "unpacked into the models dir and swapped in with the no-drop reload. Set it (e.g. "
        "5) on every server of a multi-machine desk. 0: off. Ignored when TRIAGE_BUNDLE pins "
        "a bundle.",
    ),
    Setting(
        "TRIAGE_SIGHUP",
        True,
        parse_bool,
        "Reload the bundle in the background on SIGHUP (single process, or a gunicorn worker; "
        "SIGHUP to the gunicorn master replaces the workers gracefully instead).",
    ),
    Setting(
        "TRIAGE_BIND", "127.0.0.1:8000", str, "Address gunicorn listens on (`triage serve --host/--port`)."
    ),
    Setting("TRIAGE_WORKERS", 2, int, "gunicorn worker processes (`triage serve --workers`)."),
    Setting(
        "TRIAGE_WORKER_CLASS",
        "gthread",
        str,
        "gunicorn worker class: `gthread` (keeps client connections alive) or `sync` "
        "(one request per connection, balanced per request across workers).",
    ),
    Setting(
        "TRIAGE_THREADS", 2, int, "Threads per gunicorn worker (gthread worker, so HTTP keep-alive works)."
    ),
    Setting(
        "TRIAGE_ACCEPT_DELAY_MS",
        20.0,
        float,
        "gthread workers: a worker holding more connections than another steps aside for a "
        "new one until each worker holding fewer has looked at it, at most this many "
        "milliseconds per connection beyond the fewest (at most TRIAGE_THREADS times); its main "
        "thread goes on serving meanwhile. Workers holding as many take it at once. Keep-alive "
        "clients spread over the workers instead of sharing one worker's GIL "
        "(`service/gunicorn_worker.py`). 0: accept at once, as plain gunicorn does.",
    ),
    Setting("TRIAGE_TIMEOUT", 60, int, "Seconds before gunicorn restarts a silent worker."),
    Setting(
        "TRIAGE_BODY_TIMEOUT",
        15.0,
        float,
        "Seconds a request body may take to arrive, in total; slower gets 408 and the "
        "connection is closed (0: no limit). Production puts nginx in front "
        "(`deploy/nginx.conf`), which buffers bodies before gunicorn sees them.",
    ),
    Setting(
        "TRIAGE_PROXY_HOPS",
        0,
        int,
        "Trusted reverse proxies in front (1 behind `deploy/nginx.conf`): their "
        "X-Forwarded-For/-Proto are believed, so rate limits count the real client. Keep 0 "
        "without a proxy, or clients could pick their own address.",
    ),
    Setting("TRIAGE_LOG_LEVEL", "INFO", str, "Log level of the `triage serve` entry point."),
    # -- pages for people (portal, agent workspace): service/pages_security.py, service/portal.py
    Setting(
        "TRIAGE_SECRET_KEY",
        "",
        str,
        "Key signing the page session cookies and sign-in links. Empty: a key generated once "
        "and kept in `TRIAGE_SECRET_KEY_FILE`, shared by every worker and every restart.",
    ),
    # -- where things live (entry points resolve these; the library takes them as arguments)
    Setting(
        "TRIAGE_HOME",
        "",
        str,
        "Project folder of the `triage` command: `mlflow.db`, `mlruns/` and the default "
        "`models/` live here. Empty: the working directory.",
    ),
    Setting(
        "TRIAGE_VAR_DIR",
        "var",
        str,
        "Runtime folder: the SQLite store, secret key, outgoing mail and attachments go "
        "under it unless their own setting names another place.",
    ),
    Setting(
        "TRIAGE_CACHE_DIR",
        "",
        str,
        "Cache of things that can be rebuilt: embeddings, ONNX exports, KB indexes. "
        "Empty: `~/.cache/triage`.",
    ),
    Setting(
        "TRIAGE_USER",
        "",
        str,
        "Who `triage promote`, `rollback` and `retrain` record as having acted. Empty: the login name.",
    ),
    Setting(
        "TRIAGE_ADMIN_KEY",
        "",
        str,
        "Admin API key `triage retrain --reload-url` sends to reload the service.",
    ),
    Setting(
        "TRIAGE_WEBHOOK_SECRET",
        "",
        str,
        "Secret `triage tickets` signs webhook deliveries with (HMAC-SHA256).",
    ),
    Setting("TRIAGE_IMAP_USER", "", str, "IMAP login of `triage tickets poll --imap`."),
    Setting("TRIAGE_IMAP_PASSWORD", "", str, "IMAP password of `triage tickets poll --imap`."),
    # -- read by the notebooks (training/analysis.py) and the test suite, not by the service
    Setting(
        "TRIAGE_NOTEBOOK_DATA",
        "",
        str,
        "Notebooks: ticket export to analyse. Empty: `data/demo/tickets.csv`.",
    ),
    Setting(
        "TRIAGE_NOTEBOOK_MAPPING",
        "",
        str,
        "Notebooks: column mapping of the export. Empty: `data/demo/mapping.yaml`.",
    ),
    Setting(
        "TRIAGE_NOTEBOOK_ENCODER",
        "",
        str,
        "Notebooks: `minilm`, `hashing` (fast, no weights) or `none` (TF-IDF only). Empty: `minilm`.",
    ),
    Setting(
        "TRIAGE_NOTEBOOK_HEADS",
        "",
        str,
        "Notebooks: comma-separated heads to train. Empty: every head of the mapping.",
    ),
    Setting(
        "TRIAGE_NOTEBOOK_HEAD",
        "",
        str,
        "Notebook 03: the head to analyse. Empty: `team` if trained, else the first.",
    ),
    Setting(
        "TRIAGE_NOTEBOOK_BUNDLE",
        "",
        str,
        "Notebook 03: an existing bundle to analyse. Empty: train one in a temporary folder.",
    ),
    Setting(
        "TRIAGE_SHARED_DATA",
        "",
        str,
        "Benchmarks (`bench/bench_training.py`): folder of the shared evaluation data. "
        "Empty: `../shared/data` beside the checkout.",
    ),
    Setting(
        "TRIAGE_TEST_REDIS_URL",
        "",
        str,
        "Test suite: the Redis the rate-limit tests use. Empty: `redis://127.0.0.1:6379/11`.",
    ),
    Setting(
        "TRIAGE_SCHEMATHESIS_SEED",
        "",
        str,
        "Test suite: seed of the schemathesis run (`random` picks one). Empty: a fixed seed.",
    ),
    Setting(
        "TRIAGE_SCHEMATHESIS_EXAMPLES", "", str, "Test suite: schemathesis cases per operation. Empty: 12."
    ),
    Setting(
        "TRIAGE_SCHEMATHESIS_STORE",
        "",
        str,
        "Test suite: the store the schemathesis run serves from (`postgresql`: "
        "`TRIAGE_TEST_POSTGRES_URL`). Empty: SQLite.",
    ),
    Setting(
        "TRIAGE_TEST_POSTGRES_URL",
        "",
        str,
        "Test suite and `bench/bench_store.py`: the PostgreSQL database to use. Empty: "
        "`postgresql+psycopg://postgres@127.0.0.1:5432/test`.",
    ),
    Setting(
        "TRIAGE_SECRET_KEY_FILE",
        "var/secret_key",
        str,
        "Where the generated secret key is kept (created once, mode 0600) when `TRIAGE_SECRET_KEY` is empty.",
    ),
    Setting(
        "TRIAGE_SESSION_COOKIE_SECURE",
        False,
        parse_bool,
        "Send the page session cookie over HTTPS only (turn on behind TLS).",
    ),
    Setting(
        "TRIAGE_PORTAL_EMAIL_SIGNIN",
        False,
        parse_bool,
        "DEMO ONLY: let anyone sign in to the portal as any customer by typing an e-mail "
        "address, with no proof. Logged loudly at start-up. Off: customers sign in by a "
        "one-time link sent to their address. Staff sign in with their API key.",
    ),
    Setting(
        "TRIAGE_SIGNIN_LINKS_PER_ADDRESS",
        5,
        int,
        "Sign-in links that may be requested for one address per 15 minutes (429 beyond).",
    ),
    Setting(
        "TRIAGE_SIGNIN_LINKS_PER_CLIENT",
        20,
        int,
        "Sign-in links that one client (IP address) may request per 15 minutes (429 beyond).",
    ),
    Setting(
        "TRIAGE_PORTAL_CONTROL_SHARE",
        0.10,
        float,
        "Share of portal visits (0..1) that see no article suggestions: the control group the "
        "knowledge report measures deflection against.",
    ),
    # -- ticketing core: triage/store, service/tickets.py
    Setting(
        "TRIAGE_DATABASE_URL",
        "",
        database_url,
        "SQLAlchemy URL of the ticket store, e.g. `postgresql+psycopg://user@host/db` for "
        "several workers. Empty: the SQLite file `var/triage.db` (WAL). Migrated on first use.",
    ),
    Setting(
        "TRIAGE_ESCALATION_INTERVAL",
        0.0,
        float,
        "Seconds between escalation sweeps + webhook deliveries run inside each service "
        "process. 0: off (run `triage escalate` beside the service instead).",
    ),
    # -- mail to customers and staff: triage/mail, triage/store/outbound.py, service/mailer.py
    Setting(
        "TRIAGE_PUBLIC_URL",
        "",
        str,
        "The address people reach the pages at, for links in mail (sign-in, rating, ticket). "
        "Empty: `http://` + `TRIAGE_BIND`. Never taken from a request's Host header.",
    ),
    Setting(
        "TRIAGE_MAIL_FROM",
        "helpdesk@localhost",
        str,
        "From address of outgoing mail; its domain also names the Message-IDs.",
    ),
    Setting("TRIAGE_MAIL_FROM_NAME", "Help desk", str, "Display name of outgoing mail."),
    Setting(
        "TRIAGE_SMTP_HOST",
        "",
        str,
        "SMTP server for outgoing mail. Empty: mail is written as .eml files to "
        "`TRIAGE_MAIL_DIR` and listed on the admin outbox page (the demo).",
    ),
    Setting("TRIAGE_SMTP_PORT", 587, int, "SMTP port (587 STARTTLS, 465 TLS, 25 a local relay)."),
    Setting(
        "TRIAGE_SMTP_SECURITY",
        "starttls",
        str,
        "`starttls`, `tls` (implicit TLS) or `none` (a relay on a trusted network only).",
    ),
    Setting("TRIAGE_SMTP_USER", "", str, "SMTP login (empty: no login)."),
    Setting(
        "TRIAGE_SMTP_PASSWORD",
        "",
        str,
        "SMTP password: give it in the environment, never in a file under version control.",
    ),
    Setting(
        "TRIAGE_MAIL_DIR", "var/mail-out", str, "Folder outgoing mail is written to when no SMTP host is set."
    ),
    Setting(
        "TRIAGE_MAIL_TEMPLATES",
        "",
        str,
        "Folder of mail templates overriding the shipped ones by file name "
        "(`received.txt`, `received.html`, `received.subject.txt`, ... see triage/mail/templates).",
    ),
    Setting(
        "TRIAGE_MAIL_INTERVAL",
        0.0,
        float,
        "Seconds between outbox deliveries (mail and webhooks) + pending reminders inside each "
        "service process; `triage serve` sets 5 unless told otherwise. 0: off (run "
        "`triage escalate` beside the service instead). Mail is never sent inside a request. "
        "Queued mail wakes delivery at once (see TRIAGE_MAIL_WAKE_POLL); the interval is the safety net.",
    ),
    Setting(
        "TRIAGE_MAIL_WAKE_POLL",
        0.2,
        float,
        "How the delivery loop hears of mail queued by other processes (the other workers, the "
        "CLI, a second host) between intervals: it looks this often for a row due longer than "
        "this (one indexed read; on SQLite only after `PRAGMA data_version` moved). Mail queued in the same process wakes it at commit. 0: "
        "no watcher (the interval alone).",
    ),
    Setting(
        "TRIAGE_MAIL_BATCH",
        100,
        int,
        "Mails a delivery pass claims (under a 60 s lease). A worker runs passes back to back "
        "while they send a whole batch, so mail goes out as fast as the relay takes it; a pass "
        "with a failure ends the round until the next wake or interval. Outcomes are recorded every "
        "50 mails or 5 s: a crash sends at most those again.",
    ),
    Setting(
        "TRIAGE_MAIL_RECEIPTS_PER_HOUR",
        10,
        int,
        "A requester who opened this many tickets in the hour before a new one gets no "
        "`received` notice for it (the outbox marks it failed, saying why): the guard against a "
        "mail loop with an auto-responder that answers every notice with a new message. 0: no limit.",
    ),
    Setting(
        "TRIAGE_MAIL_PENDING_REMINDER_HOURS",
        48.0,
        float,
        "A ticket pending on the customer this long gets one reminder mail per pending spell "
        "(0: no reminders).",
    ),
    # -- attachments: triage/store/attachments.py, service/attachments.py
    Setting(
        "TRIAGE_ATTACHMENTS_DIR",
        "var/attachments",
        str,
        "Folder of attachment bytes, stored by content (sha256); the database keeps the rest.",
    ),
    Setting(
        "TRIAGE_ATTACHMENT_MAX_BYTES",
        10 * 1024 * 1024,
        int,
        "Largest attachment accepted, per file (413 beyond).",
    ),
    Setting(
        "TRIAGE_ATTACHMENT_TICKET_MAX_BYTES",
        25 * 1024 * 1024,
        int,
        "Most attachment bytes one ticket may hold (413 beyond).",
    ),
    Setting(
        "TRIAGE_WEBHOOK_ALLOW",
        "",
        str,
        "Non-public hosts or networks webhooks may reach, comma-separated (e.g. "
        "`127.0.0.1,10.2.0.0/16`, `hooks.internal`). Empty: webhooks reach only public "
        "addresses; loopback, private, link-local and cloud-metadata ones are refused.",
    ),
    Setting(
        "TRIAGE_SHADOW_BUNDLE",
        "",
        str,
        "Shadow mode: a challenger bundle (id under the models dir, or a folder) run beside "
        "the champion on live tickets; its predictions are stored, never applied, and "
        "compared with agents' labels at `GET /v1/admin/shadow`. Empty: off.",
    ),
]

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SETTINGS}


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The declared settings present in the environment, parsed to their types."""
    environ = os.environ if environ is None else environ
    return {s.name: s.parse(environ[s.name]) for s in SETTINGS if s.name in environ}


def unknown(names) -> list[str]:
    """The ``TRIAGE_*`` names among ``names`` that no setting declares."""
    return sorted(n for n in names if n.startswith("TRIAGE_") and n not in BY_NAME)


def check_names(names, where: str) -> None:
    """Refuse an undeclared ``TRIAGE_*`` name: a typo must not silently change nothing."""
    bad = unknown(names)
    if bad:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(bad)}; expected one of: "
            f"{', '.join(sorted(BY_NAME))} (see docs/SETTINGS.md)"
        )


def resolve(
    test_config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Defaults → environment → test config (other Flask keys in test config pass through).

    Unknown ``TRIAGE_*`` names, in the environment or the test config, are refused. A
    setting whose default lies under ``var/`` follows ``TRIAGE_VAR_DIR`` unless it is given.
    """
    environ = os.environ if environ is None else environ
    check_names(environ, "environment")
    check_names(test_config or {}, "test config")
    config = defaults()
    config.update(from_environ(environ))
    for key, value in (test_config or {}).items():
        if key.startswith("TRIAGE_"):
            value = BY_NAME[key].parse(value)
        config[key] = value
    var_dir = str(config["TRIAGE_VAR_DIR"] or "var")
    for s in SETTINGS:
        given = s.name in environ or s.name in (test_config or {})
        if not given and isinstance(s.default, str) and s.default.startswith("var/"):
            config[s.name] = str(Path(var_dir) / s.default[len("var/") :])
    return config


def value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One resolved setting, for entry points outside the app (the ``triage`` command)."""
    return resolve(None, environ)[name]


def settings_markdown() -> str:
    """docs/SETTINGS.md, generated from SETTINGS (a test checks the file is current)."""
    lines = [
        "# Service settings",
        "",
        "Generated from `service/settings.py` by `python -m service.settings > docs/SETTINGS.md`;",
        "a test fails when this file and the declarations differ.",
        "",
        "Precedence: the default below, then the environment variable, then the `test_config`",
        "passed to `service.create_app`.",
        "",
        "| setting | type | default | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        default = "(empty)" if s.default == "" else f"`{s.default}`"
        lines.append(f"| `{s.name}` | {s.type_name} | {default} | {s.doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
