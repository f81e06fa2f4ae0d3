"""The browser test harness: a real server, Debian's chromium driven by Playwright, screenshots.

Reused by every page's tests (portal, agent workspace, reports):

- ``live_app`` / ``base_url``: the Flask app from ``create_app`` served by a real
  threaded HTTP server on a free 127.0.0.1 port, with a small bundle trained once
  per session with the HashingEncoder on the demo corpus (seconds, no weights),
  the demo KB plus hostile articles (``HOSTILE_ARTICLES``), a SQLite store and
  API keys for an agent (``alice``) and an admin (``root``).
- ``page``: a fresh 1366×768 browser context; any ``alert``/``confirm`` fails the
  test (an executed script is an XSS), and so does a Content-Security-Policy
  violation reported on the console (an inline script we shipped by mistake).
- in ``harness.py``: ``sign_in(page, base_url, email=… | key=…)``, ``shot(page, name)``
  (screenshots go to ``artifacts/screenshots/``, git-ignored), ``open_ticket(app, payload)``
  to seed the store through the same intake as the API, ``store_session(app)``, the keys
  (``AGENT_KEY``, ``ADMIN_KEY``) and the hostile strings (``XSS_*``).

Playwright cannot download browsers here, so it launches ``/usr/bin/chromium``
(``apt-get install chromium``). When it is missing the tests skip, except under
``CI=true`` where a missing browser is a failure.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from .harness import (
    AGENT_TEAMS,
    CHROMIUM,
    DEMO,
    HOSTILE_ARTICLES,
    KEYS,
    LAUNCH_ARGS,
    VIEWPORT,
    shot,
    store_session,
    unavailable,
)


# ----------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium through Playwright (skip with the reason when it is not installed)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True, timeout=60_000
        )
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome on the test item (the page fixture screenshots failures)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser, request):
    """A fresh context and page; a fired dialog or a CSP violation fails the test.

    A failed test leaves ``artifacts/screenshots/FAILED-<test>.png`` of where it stopped.
    """
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    dialogs: list[str] = []
    csp: list[str] = []

    def on_dialog(dialog):
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    page.dialogs, page.csp_errors = dialogs, csp
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        shot(page, "FAILED-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name))
    context.close()
    assert not dialogs, f"a script ran on the page (XSS): {dialogs}"
    assert not csp, f"the page broke its own Content-Security-Policy: {csp}"


# ----------------------------------------------------------------- the app
@pytest.fixture(scope="session")
def browser_bundle(tmp_path_factory) -> Path:
    """A small bundle: the demo corpus, HashingEncoder, one candidate, 3-fold calibration."""
    from training.pipeline import train

    out = tmp_path_factory.mktemp("browser-models")
    result = train(
        DEMO / "tickets.csv",
        DEMO / "mapping.yaml",
        out,
        encoder="hashing",
        candidates=("combined",),
        cv=3,
        progress=False,
    )
    return Path(result.bundle_path)


def _write_kb(folder: Path) -> Path:
    """The demo articles plus the hostile and the credited ones, as JSON Lines."""
    from triage.articles import load_articles

    articles = [a.to_dict() for a in load_articles(DEMO / "kb")] + HOSTILE_ARTICLES
    path = folder / "kb.jsonl"
    path.write_text("\n".join(json.dumps(a) for a in articles) + "\n", encoding="utf-8")
    return path


def _write_keys(folder: Path) -> Path:
    from service.auth import digest

    path = folder / "keys.json"
    path.write_text(
        json.dumps(
            [{"name": name, "role": role, "sha256": digest(key)} for key, (role, name) in KEYS.items()]
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def live_app(browser, browser_bundle, tmp_path_factory):
    """The app with a loaded bundle, KB, store and keys (built after the browser check)."""
    from service.app import create_app
    from triage.store import routing

    folder = tmp_path_factory.mktemp("browser-app")
    app = create_app(
        {
            "TRIAGE_BUNDLE": str(browser_bundle),
            "TRIAGE_MODELS_DIR": str(browser_bundle.parent),
            "TRIAGE_LOAD": "sync",
            # every test signs in afresh from 127.0.0.1: far above the per-client sign-in limit
            # meant for people (tests/test_rate_limits.py covers the limits themselves)
            "TRIAGE_RATELIMIT_SIGNIN": "10000 per minute",
            "TRIAGE_KB_PATH": str(_write_kb(folder)),
            "TRIAGE_API_KEYS_FILE": str(_write_keys(folder)),
            "TRIAGE_DATABASE_URL": f"sqlite:///{folder / 'store.db'}",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_SECRET_KEY": "browser-tests",
            "TRIAGE_PORTAL_CONTROL_SHARE": 0.0,
            "TRIAGE_KB_THRESHOLD": "0.1",
        }
    )  # hashing-encoder cosines run lower than MiniLM's
    with store_session(app) as session:
        routing.upsert_agent(session, "alice", name="Alice Agent", teams=AGENT_TEAMS)
    from .harness import LIVE

    LIVE["app"] = app
    return app


@pytest.fixture(scope="session")
def base_url(live_app):
    """A real threaded HTTP server on a free local port, stopped at the end of the session."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
