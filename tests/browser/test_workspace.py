"""The agent workspace walks one ticket through the whole ITIL lifecycle, by keyboard and mouse.

new → claimed (assigned) → in progress → pending (customer) → in progress → resolved → closed,
then the ticket's history on its page shows every step, and "My tickets" and search find it.
"""

from __future__ import annotations

import pytest

from triage.store import tickets
from triage.store.tables import TicketRow

from .harness import AGENT_KEY, shot, sign_in, store_session

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _new_ticket(app) -> int:
    """An unassigned, fully triaged ticket in the Network queue (no auto-assignment)."""
    with store_session(app) as s:
        row, _ = tickets.create(
            s,
            {
                "subject": "Wobblefrotz VPN gateway flapping",
                "body": "The Lyon VPN gateway restarts every hour.",
                "requester": "zoe@acme.example",
            },
            actor="test",
        )
        tickets.set_fields(
            s,
            row,
            {
                "category": "Network",
                "priority": 2,
                "affected_service": "VPN",
                "team": "Network",
                "queue": "Network",
            },
            actor="test",
            retime=False,
        )
        return row.id


def _status(page) -> str:
    return page.locator(".meta .badge[class*=status-]").inner_text().strip()


def test_one_ticket_walks_the_whole_lifecycle(page, base_url, live_app):
    ticket_id = _new_ticket(live_app)
    sign_in(page, base_url, key=AGENT_KEY)
    page.goto(f"{base_url}/agent/tickets/{ticket_id}")
    assert _status(page) == "new"

    page.locator("#claim").focus()  # by keyboard: every control is a focusable form element
    page.keyboard.press("Enter")
    page.locator(".flash-ok").wait_for()
    assert _status(page) == "assigned"
    shot(page, "workspace-claimed")

    page.get_by_role("button", name="Start work").click()
    page.locator(".flash-ok").wait_for()
    assert _status(page) == "in progress"

    page.select_option("#pending-reason", "customer")
    page.locator("#pend").click()
    page.locator(".flash-ok").wait_for()
    assert _status(page) == "pending"
    assert "customer" in page.locator("#pending-note").inner_text()

    page.get_by_role("button", name="Resume").click()
    page.locator(".flash-ok").wait_for()
    assert _status(page) == "in progress"

    page.get_by_role("button", name="Resolve").click()
    page.locator(".flash-ok").wait_for()
    assert _status(page) == "resolved"

    page.get_by_role("button", name="Close").click()
    page.locator(".flash-ok").wait_for()
    assert _status(page) == "closed"
    assert page.get_by_role("button", name="Reopen").is_visible()
    shot(page, "workspace-closed", full_page=True)

    rows = page.locator("#history tbody tr")
    steps = [
        tuple(c.strip() for c in rows.nth(i).locator("td").all_inner_texts()[1:4])
        for i in range(rows.count())
    ]
    statuses = [(old, new) for field, old, new in steps if field == "status"]
    assert statuses == [
        ("new", "assigned"),
        ("assigned", "in_progress"),
        ("in_progress", "pending"),
        ("pending", "in_progress"),
        ("in_progress", "resolved"),
        ("resolved", "closed"),
    ]
    assert ("pending_reason", "", "customer") in steps
    assert ("assignee", "", "alice") in steps
    with store_session(live_app) as s:
        row = s.get(TicketRow, ticket_id)
        assert (row.status, row.assignee) == ("closed", "alice")


def test_my_tickets_search_and_bulk_assign(page, base_url, live_app):
    first, second = _new_ticket(live_app), _new_ticket(live_app)
    sign_in(page, base_url, key=AGENT_KEY)
    page.goto(f"{base_url}/agent/?q=wobblefrotz+gateway&status=open")
    assert page.locator(f"tr[data-ticket='{first}']").is_visible()
    page.locator(f"#sel-{first}").check()
    page.locator(f"#sel-{second}").check()
    page.get_by_role("button", name="Assign to me").click()
    page.locator(".flash-ok").wait_for()
    page.goto(f"{base_url}/agent/?view=mine")
    for ticket_id in (first, second):
        assert page.locator(f"tr[data-ticket='{ticket_id}']").is_visible()
    shot(page, "workspace-mine")
    with store_session(live_app) as s:
        assert {s.get(TicketRow, t).assignee for t in (first, second)} == {"alice"}
