"""Constants and helpers of the browser tests (fixtures are in ``conftest.py``).

Tests import from here: ``from .harness import shot, sign_in, open_ticket, store_session``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
KEYS = {"alice-key-0123456789": ("agent", "alice"), "root-key-0123456789": ("admin", "root")}
AGENT_KEY, ADMIN_KEY = "alice-key-0123456789", "root-key-0123456789"
AGENT_TEAMS = [
    "Network",
    "Service Desk",
    "Identity & Access",
    "End-User Computing",
    "Collaboration",
    "Business Applications",
    "HR Systems",
]

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SVG = "<svg onload=alert(1)>"
XSS_LINK = "[click me](javascript:alert(1))"
XSS_TEXT = f'{XSS_IMG} {XSS_SVG} <script>alert(1)</script> <a href="javascript:alert(1)">x</a>'
HOSTILE_ARTICLES = [
    {
        "id": "kb-hostile",
        "title": f"Toner smudges {XSS_IMG}",
        "description": f"Smudged toner prints {XSS_SVG}",
        "body": f"Smudged toner on printed pages. {XSS_TEXT}\n\n{XSS_LINK}\n\nReplace the toner "
        "cartridge and run the printer cleaning cycle.",
        "url": "javascript:alert(1)",
        "attribution": f"Microsoft, CC BY 4.0 {XSS_IMG}",
    },
    {
        "id": "kb-credited",
        "title": "Reset a forgotten Windows Hello PIN",
        "description": "Forgot your Windows Hello PIN on your laptop? Reset it from the sign-in screen.",
        "body": "On the sign-in screen select 'I forgot my PIN', confirm with your password and "
        "two-step verification, then choose a new Windows Hello PIN.",
        "url": "https://learn.microsoft.com/windows/security/",
        "attribution": "Microsoft, CC BY 4.0",
    },
]


def unavailable(reason: str):
    """Skip with the reason, except under ``CI=true`` where a missing browser fails."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


def shot(page, name: str, *, full_page: bool = False) -> Path:
    """Screenshot as artifacts/screenshots/<name>.png: the 1366×768 viewport, or the whole page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@contextmanager
def store_session(app):
    """A unit of work on the app's store (the same Store the pages use)."""
    from service.store import get_store

    with app.app_context():
        with get_store().session() as session:
            yield session


def open_ticket(app, payload: dict, actor: str = "test", now=None) -> int:
    """Seed a ticket through the same intake as ``POST /v1/tickets`` (model, rules, clocks)."""
    from service.state import serving_components
    from triage.store.intake import intake

    with app.app_context():
        triager, rules, encoder = serving_components()
    with store_session(app) as session:
        result = intake(
            session, dict(payload), actor=actor, triager=triager, ruleset=rules, encoder=encoder, now=now
        )
        return result.ticket.id


LIVE = {}  # "app": the app behind base_url (conftest's live_app), to read the mailed links


def sign_in(page, base_url: str, *, email: str | None = None, key: str | None = None):
    """Through the sign-in page, as staff (API key) or as a customer: by the one-time link
    mailed to the address, read from the outbox as the customer reads it from their mail."""
    page.goto(f"{base_url}/signin")
    if key is not None:
        page.fill("#key", key)
        page.locator("form:has(#key) button[type=submit]").click()
        page.wait_for_load_state("domcontentloaded")
        return
    address = email or "customer@acme.example"
    page.fill("#email", address)
    page.locator("form:has(#email) button[type=submit]").click()
    page.wait_for_load_state("domcontentloaded")
    from service.tickets import get_store
    from signin_support import latest_signin_path

    with LIVE["app"].app_context():
        path = latest_signin_path(get_store(), address)
    page.goto(f"{base_url}{path}")
    page.locator("#use-link").click()
    page.wait_for_load_state("domcontentloaded")
