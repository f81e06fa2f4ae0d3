"""The pages' security and the portal's bookkeeping without a browser (fast; no bundle).

The browser tests (tests/browser/) drive the same pages in chromium; these pin
the rules underneath: CSRF on every page form, the CSP on every response,
sign-in roles, safe redirects, portal visits and their events in the store.
"""

from __future__ import annotations

import re

import pytest

from service.app import create_app
from signin_support import customer_client
from service.pages_security import safe_next
from triage.store import Store
from triage.store import portal_events as events

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(tmp_path):
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "agent-secret:agent,intake-secret:intake",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'pages.db'}",
            "TRIAGE_SECRET_KEY": "test",
            "TRIAGE_PORTAL_CONTROL_SHARE": 0.0,
        }
    )


def signed_in(app, **form):
    if form.get("kind") == "customer":  # customers sign in by a mailed one-time link
        return customer_client(app, form["email"])
    client = app.test_client()
    token = TOKEN.search(client.get("/signin").text).group(1)
    response = client.post("/signin", data={"csrf_token": token, **form})
    return client, response


def test_every_response_carries_the_security_headers(app):
    client = app.test_client()
    for path in ("/signin", "/livez", "/v1/kb/suggest?q=x", "/nowhere"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"], path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_page_forms_need_the_session_csrf_token(app):
    client = app.test_client()
    client.get("/signin")
    refused = client.post("/signin", data={"kind": "customer", "email": "a@acme.example"})
    assert refused.status_code == 400 and "text/html" in refused.content_type
    assert "expired" in refused.text


def test_staff_sign_in_takes_the_role_of_the_key(app):
    client, response = signed_in(app, kind="staff", key="agent-secret")
    assert response.status_code == 302 and response.location.endswith("/agent/")
    with client.session_transaction() as session:
        assert session["user"]["role"] == "agent"
    _, refused = signed_in(app, kind="staff", key="intake-secret")  # a pipeline, not a person
    assert refused.status_code == 401
    _, refused = signed_in(app, kind="staff", key="wrong")
    assert refused.status_code == 401


def test_customers_cannot_open_agent_pages_and_anonymous_go_to_sign_in(app):
    anonymous = app.test_client().get("/agent/triage")
    assert anonymous.status_code == 302 and "/signin?next=" in anonymous.location
    client, _ = signed_in(app, kind="customer", email="c@acme.example")
    assert client.get("/agent/triage").status_code == 403


@pytest.mark.parametrize(
    "target,expected",
    [
        ("/portal/tickets", "/portal/tickets"),
        ("//evil.example/x", "/d"),
        ("https://evil.example", "/d"),
        ("javascript:alert(1)", "/d"),
        ("/\\evil", "/d"),
        (None, "/d"),
    ],
)
def test_next_is_only_ever_a_local_path(target, expected):
    assert safe_next(target, "/d") == expected


def test_portal_submission_without_a_bundle_opens_a_ticket(app):
    client, _ = signed_in(app, kind="customer", email="c@acme.example")
    page = client.get("/portal/")
    assert page.status_code == 200 and 'id="suggestions"' in page.text
    assert client.get("/portal/suggest?q=vpn").json["suggestions"] == []  # not loaded: none
    token = TOKEN.search(page.text).group(1)
    response = client.post(
        "/portal/submit",
        data={
            "csrf_token": token,
            "subject": "Payslip missing",
            "details": "March payslip",
            "affected": "payroll",
            "people": "me",
            "work": "yes",
        },
    )
    assert response.status_code == 302
    store = app.extensions["triage.store"]
    with store.session() as s:
        visit = s.get(events.PortalVisit, 1)
        assert (visit.outcome, visit.control) == ("submitted", False)
        assert [e["kind"] for e in events.events_of(s, visit.id)] == ["submitted"]


def test_control_visits_get_no_suggestion_panel(app):
    app.config["TRIAGE_PORTAL_CONTROL_SHARE"] = 1.0
    client, _ = signed_in(app, kind="customer", email="c@acme.example")
    page = client.get("/portal/")
    assert 'id="suggestions"' not in page.text and "portal.js" not in page.text


def test_portal_events_count_once_per_article_per_visit(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.upgrade()
    with store.session() as s:
        a = events.start_visit(s, "a@x.example", control=False)
        assert events.record(s, a, "shown", "kb1", rank=1, score=0.5)
        assert not events.record(s, a, "shown", "kb1", rank=1, score=0.5)  # typing on
        events.record(s, a, "opened", "kb1")
        assert events.finish(s, a, "solved", article_id="kb1")
        assert not events.finish(s, a, "submitted")  # one ending per visit
        b = events.start_visit(s, "b@x.example", control=False)
        events.record(s, b, "shown", "kb1")
        events.finish(s, b, "submitted")
        events.start_visit(s, "c@x.example", control=True)
        counts = events.article_counts(s)
        outcomes = events.outcome_counts(s)
    assert counts == [{"article_id": "kb1", "shown": 2, "opened": 1, "solved": 1, "ticket_anyway": 1}]
    assert outcomes["treatment"] == {"visits": 2, "solved": 1, "submitted": 1, "abandoned": 0}
    assert outcomes["control"]["abandoned"] == 1
    store.dispose()
