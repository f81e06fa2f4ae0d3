"""The agent workspace in a real browser: triage accept → feedback, live SLA clocks, merge.

Accepting a suggestion must go through the store like ``PATCH /v1/tickets`` does,
so the test reads the feedback table, not the page, to know it happened.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from triage.store import clocks
from triage.store.tables import Feedback, Link, TicketRow

from .harness import AGENT_KEY, ADMIN_KEY, open_ticket, shot, sign_in, store_session

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]  # bounded, even on a loaded machine
COUNTDOWN = re.compile(r"^(\d+d )?(\d+h )?\d+m \d\ds? left$|^\d+d \d+h \d\dm left$")


def test_agent_accepts_a_triage_suggestion_and_feedback_is_written(page, base_url, live_app):
    ticket_id = open_ticket(
        live_app,
        {
            "subject": "Something is not working",
            "body": "Hello, it stopped. Can someone look?",
            "requester": "hal@acme.example",
            "channel": "email",
        },
    )
    sign_in(page, base_url, key=AGENT_KEY)
    page.goto(f"{base_url}/agent/triage")
    item = page.locator(f".triage-item[data-ticket='{ticket_id}']")
    item.wait_for()
    shot(page, "agent-triage")
    accept = item.locator("button.accept").first
    field = accept.locator("xpath=ancestor::div[@data-field]").get_attribute("data-field")
    label = accept.locator("xpath=../input[@name='value']").get_attribute("value")
    accept.click()
    page.locator(".flash-ok").wait_for()
    shot(page, "agent-triage-accepted")

    with store_session(live_app) as s:
        rows = list(s.scalars(select(Feedback).where(Feedback.ticket_id == ticket_id)))
        ticket = s.get(TicketRow, ticket_id)
        value = getattr(ticket, field)
    assert rows, "accepting a suggestion must write a feedback row"
    assert {r.by for r in rows} == {"alice"}
    assert all(r.corrected == str(value) for r in rows)
    assert any(r.predicted == label for r in rows)


def test_agent_corrects_a_field_with_another_value(page, base_url, live_app):
    ticket_id = open_ticket(
        live_app,
        {
            "subject": "Question about something",
            "body": "Not sure who to ask.",
            "requester": "ivy@acme.example",
            "channel": "chat",
        },
    )
    sign_in(page, base_url, key=AGENT_KEY)
    page.goto(f"{base_url}/agent/tickets/{ticket_id}")
    row = page.locator(".suggest-row[data-field]").first
    row.wait_for()
    field = row.get_attribute("data-field")
    choice = row.locator("select[name=value] option").nth(1).get_attribute("value")
    row.locator("select[name=value]").select_option(choice)
    row.locator("form:has(select) button").click()
    page.locator(".flash-ok").wait_for()
    with store_session(live_app) as s:
        ticket = s.get(TicketRow, ticket_id)
        assert str(getattr(ticket, field)) in {choice, choice.lstrip("P")}


def test_queue_shows_a_live_sla_countdown_and_escalation(page, base_url, live_app):
    ticket_id = open_ticket(
        live_app,
        {
            "subject": "VPN drops for the whole Leeds office",
            "body": "Since 9am, every 5 minutes.",
            "requester": "jon@acme.example",
            "channel": "phone",
            "category": "Network",
            "priority": 2,
            "affected_service": "VPN",
            "team": "Network",
        },
    )
    with store_session(live_app) as s:
        queue = s.get(TicketRow, ticket_id).queue
    sign_in(page, base_url, key=AGENT_KEY)
    page.goto(f"{base_url}/agent/?queue={queue}")
    clock = page.locator(f"tr[data-ticket='{ticket_id}'] .sla")
    clock.wait_for()
    first = clock.inner_text().strip()
    assert COUNTDOWN.match(first), first
    page.wait_for_timeout(1300)
    assert clock.inner_text().strip() != first, "the SLA clock must count down every second"
    assert page.locator(f"tr[data-ticket='{ticket_id}'] .badge.esc-0").count() == 1
    shot(page, "agent-queue")

    page.locator(f"tr[data-ticket='{ticket_id}'] a").first.click()
    page.locator("#history").wait_for()
    assert page.locator("#history tbody tr").count() >= 3
    assert COUNTDOWN.match(page.locator(".sla").first.inner_text().strip())
    shot(page, "agent-ticket")
    shot(page, "agent-ticket-full", full_page=True)


def test_queue_shows_paused_and_breached_clocks_and_escalation_levels(page, base_url, live_app):
    network = {
        "requester": "lee@acme.example",
        "channel": "phone",
        "category": "Network",
        "affected_service": "Wi-Fi",
        "team": "Network",
    }
    late = open_ticket(
        live_app,
        {**network, "subject": "Wi-Fi down in the warehouse", "body": "Scanners offline.", "priority": 1},
        now=datetime.now(timezone.utc) - timedelta(days=5),
    )
    waiting = open_ticket(
        live_app, {**network, "subject": "Wi-Fi slow on floor 2", "body": "Slow since Monday.", "priority": 3}
    )
    with store_session(live_app) as s:
        clocks.sweep(s)  # what the escalation scheduler does every interval
        queue = s.get(TicketRow, late).queue
    sign_in(page, base_url, key=AGENT_KEY)
    page.goto(f"{base_url}/agent/tickets/{waiting}")
    page.select_option("#pending-reason", "customer")
    page.locator("#pend").click()
    page.locator(".flash-ok").wait_for()
    assert page.locator(".sla").first.inner_text().startswith("paused")
    page.goto(f"{base_url}/agent/?queue={queue}")
    late_clock = page.locator(f"tr[data-ticket='{late}'] .sla")
    assert re.match(r"^breached .+ ago$", late_clock.inner_text()), late_clock.inner_text()
    assert "breached" in late_clock.get_attribute("class")
    assert page.locator(f"tr[data-ticket='{waiting}'] .sla").inner_text().startswith("paused")
    level = page.locator(f"tr[data-ticket='{late}'] [title='escalation level']").inner_text()
    assert level.startswith("level "), level
    shot(page, "agent-queue-sla-states")

    sign_in(page, base_url, email="lee@acme.example")  # the customer answers: back to work
    page.goto(f"{base_url}/portal/tickets/{waiting}")
    page.fill("#reply", "Here are the details you asked for.")
    page.locator("form:has(#reply) button[type=submit]").click()
    page.locator(".flash-ok").wait_for()
    with store_session(live_app) as s:
        assert s.get(TicketRow, waiting).status == "in_progress"


def test_duplicate_candidates_can_be_merged(page, base_url, live_app):
    text = {
        "subject": "Outlook cannot send mail, stuck in outbox",
        "body": "Every e-mail I send stays in the outbox since this morning.",
    }
    parent = open_ticket(live_app, {**text, "requester": "kim@acme.example", "channel": "web"})
    child = open_ticket(live_app, {**text, "requester": "kim@acme.example", "channel": "email"})
    sign_in(page, base_url, key=ADMIN_KEY)
    page.goto(f"{base_url}/agent/tickets/{child}")
    candidate = page.locator(f"#duplicates form:has(input[name=into][value='{parent}'])")
    candidate.wait_for()
    candidate.scroll_into_view_if_needed()
    shot(page, "agent-ticket-duplicates")
    shot(page, "agent-ticket-duplicates-full", full_page=True)
    candidate.locator("button").click()
    page.locator(".flash-ok").wait_for()
    assert page.url.endswith(f"/agent/tickets/{parent}")
    with store_session(live_app) as s:
        links = list(s.scalars(select(Link).where(Link.ticket_id == child)))
    assert [(k.target_id, k.kind) for k in links] == [(parent, "duplicate_of")]
