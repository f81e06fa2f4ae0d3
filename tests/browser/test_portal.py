"""The self-service portal in a real browser: suggestions while typing, deflection, tickets.

Each test checks the page *and* the store: what the knowledge report will count
(visits, shown/opened/solved/submitted events, the control flag) must be what
the customer actually did.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from triage.store.portal_events import PortalVisit, articles_of, events_of
from triage.store.tables import Comment, TicketRow

from .harness import open_ticket, shot, sign_in, store_session

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]  # bounded, even on a loaded machine
PROBLEM = "My VPN keeps disconnecting every few minutes when I work from home"


def type_problem(page, text: str = PROBLEM) -> None:
    """Type like a person (key by key), so the debounced suggestion fetch runs as in life."""
    page.locator("#subject").press_sequentially(text, delay=15)


def last_visit(app, visitor: str) -> PortalVisit:
    with store_session(app) as s:
        return s.scalars(
            select(PortalVisit).where(PortalVisit.visitor == visitor).order_by(PortalVisit.id.desc())
        ).first()


def test_typing_shows_suggestions_and_solving_is_a_deflection(page, base_url, live_app):
    sign_in(page, base_url, email="dana@acme.example")
    page.goto(f"{base_url}/portal/")
    shot(page, "portal-start")
    type_problem(page)
    first = page.locator(".suggestion").first
    first.wait_for()
    assert re.search("vpn", page.locator("#suggestion-list").inner_text(), re.I)
    shot(page, "portal-suggestions")
    first.locator(".suggestion-title").click()
    first.locator(".article-text").wait_for()
    assert first.locator(".article-text").inner_text().strip()
    shot(page, "portal-article-open")
    opened_id = first.get_attribute("data-article-id")
    first.locator("button.solved").click()
    page.locator("#solved").wait_for()
    shot(page, "portal-solved")

    visit = last_visit(live_app, "dana@acme.example")
    assert (visit.outcome, visit.control, visit.ticket_id) == ("solved", False, None)
    assert visit.solved_article == opened_id
    with store_session(live_app) as s:
        kinds = [e["kind"] for e in events_of(s, visit.id)]
        seen = articles_of(s, visit.id)
    assert kinds.count("solved") == 1 and "shown" in kinds
    assert opened_id in seen["shown"] and seen["opened"] == [opened_id]


def test_still_need_help_submits_a_ticket_with_the_articles_seen(page, base_url, live_app):
    sign_in(page, base_url, email="erin@acme.example")
    page.goto(f"{base_url}/portal/")
    page.locator("#still-need-help").click()  # nothing filled in: the form explains
    page.locator(".field-error").first.wait_for()
    shot(page, "portal-form-errors")
    type_problem(page)
    first = page.locator(".suggestion").first
    first.wait_for()
    opened_id = first.get_attribute("data-article-id")
    first.locator(".suggestion-title").click()
    first.locator(".article-text").wait_for()
    page.fill("#details", "Tried restarting the router and the laptop. Error 412.")
    page.select_option("#affected", "vpn")
    page.check("input[name=people][value=me]")
    page.check("input[name=work][value=partly]")
    page.locator("#still-need-help").click()
    page.locator(".ticket-subject").wait_for()
    shot(page, "portal-ticket")

    visit = last_visit(live_app, "erin@acme.example")
    assert visit.outcome == "submitted" and visit.ticket_id
    with store_session(live_app) as s:
        ticket = s.get(TicketRow, visit.ticket_id)
        portal = ticket.extra["portal"]
        assert ticket.requester == "erin@acme.example" and ticket.channel == "portal"
        assert ticket.affected_service == "VPN" and ticket.priority is not None
        assert (ticket.extra["impact"], ticket.extra["urgency"]) == ("low", "medium")
        assert opened_id in portal["shown_articles"] and portal["opened_articles"] == [opened_id]

    page.fill("#reply", "It happened again at 10:15.")
    page.locator("form:has(#reply) button[type=submit]").click()
    page.get_by_text("It happened again at 10:15.").wait_for()
    with store_session(live_app) as s:
        bodies = [c.body for c in s.scalars(select(Comment).where(Comment.ticket_id == visit.ticket_id))]
    assert bodies == ["It happened again at 10:15."]
    page.goto(f"{base_url}/portal/tickets")
    assert page.get_by_text(PROBLEM).count() == 1
    shot(page, "portal-my-requests")


def test_control_group_sees_no_suggestions(page, base_url, live_app):
    live_app.config["TRIAGE_PORTAL_CONTROL_SHARE"] = 1.0
    try:
        sign_in(page, base_url, email="fay@acme.example")
        page.goto(f"{base_url}/portal/")
        type_problem(page)
        page.wait_for_timeout(800)  # well past the debounce: nothing may appear
        assert page.locator("#suggestions, .suggestion").count() == 0
        answer = page.evaluate("fetch('/portal/suggest?q=vpn+disconnects').then(r => r.json())")
        assert answer["suggestions"] == []
        shot(page, "portal-control-group")
    finally:
        live_app.config["TRIAGE_PORTAL_CONTROL_SHARE"] = 0.0
    visit = last_visit(live_app, "fay@acme.example")
    assert visit.control is True
    with store_session(live_app) as s:
        assert events_of(s, visit.id) == []


def test_a_customer_cannot_open_someone_elses_ticket(page, base_url, live_app):
    other = open_ticket(
        live_app,
        {
            "subject": "Payslip question",
            "body": "private",
            "requester": "gus@acme.example",
            "channel": "portal",
        },
    )
    sign_in(page, base_url, email="mallory@acme.example")
    response = page.goto(f"{base_url}/portal/tickets/{other}")
    assert response.status == 404
    shot(page, "portal-not-found")
