"""The admin reports in a real browser: overrides show up, threshold changes bite, text stays text.

Uses the shared harness (``conftest.py``): one live app per session, so every test
here puts the decision policy back the way it found it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from triage.store import policies

from .harness import ADMIN_KEY, AGENT_KEY, XSS_IMG, open_ticket, shot, sign_in, store_session

pytestmark = pytest.mark.browser
TICKET = {
    "subject": "VPN keeps disconnecting",
    "channel": "email",
    "body": "Since this morning the VPN client drops every few minutes and I cannot reach "
    "the file shares. I restarted the laptop twice and it still happens.",
}


@pytest.fixture
def clean_policy(live_app):
    """Heads and classes back to the bundle's own behaviour after the test."""
    yield
    with store_session(live_app) as s:
        for head, entry in policies.effective(s).items():
            if entry.get("mode", "auto") != "auto":
                policies.set_mode(s, head, "auto", by="test-cleanup")
            for label in entry.get("classes") or {}:
                policies.set_class(s, head, label, None, by="test-cleanup")


SEEDED = {"done": False}
SEED_TICKETS = [  # (subject, days ago, priority, tier, first response after … hours or None)
    ("Cannot print to the 3rd floor printer", 9, 3, "gold", 1),
    ("VPN drops every hour", 8, 2, "silver", 30),
    ("Outlook stuck in the outbox", 6, 3, "bronze", 2),
    ("Payroll slip missing for November", 5, 4, "gold", 80),
    ("New starter needs a laptop", 4, 4, "silver", None),
    ("Teams calls drop audio", 3, 2, "gold", 3),
    ("Shared drive is read-only", 2, 3, "bronze", None),
    ("Password expired, locked out", 1, 1, "gold", 0.5),
]


def seed_history(live_app) -> None:
    """Tickets opened over the last days (clocks met, breached, still open) and portal visits
    in both groups, so the SLA and knowledge pages have something to show."""
    from service.state import serving_components
    from triage.store import clocks, portal_events
    from triage.store.intake import intake
    from triage.store.tables import TicketRow

    if SEEDED["done"]:
        return
    now = datetime.now(timezone.utc)
    with live_app.app_context():
        triager, rules, encoder = serving_components()
    for i, (subject, days, prio, tier, hours) in enumerate(SEED_TICKETS):
        opened = now - timedelta(days=days, hours=3)
        with store_session(live_app) as s:
            result = intake(
                s,
                {
                    "subject": subject,
                    "body": f"{subject}. Please help.",
                    "requester": f"user{i}@acme.example",
                    "channel": "email",
                    "priority": prio,
                    "customer_tier": tier,
                },
                actor="seed",
                triager=triager,
                ruleset=rules,
                now=opened,
            )
            if hours is not None:
                ticket = s.get(TicketRow, result.ticket.id)
                clocks.stop(s, ticket, clocks.FIRST_RESPONSE, opened + timedelta(hours=hours))
    with store_session(live_app) as s:
        for i in range(24):
            control = i % 4 == 0
            visit = portal_events.start_visit(s, f"v{i}@acme.example", control, now - timedelta(hours=i))
            if not control:
                for rank, article in enumerate(("KB0001", "kb-hostile", "KB0002")[: 1 + i % 3]):
                    portal_events.record(s, visit, "shown", article, rank=rank, score=0.5)
                if i % 2:
                    portal_events.record(s, visit, "opened", "KB0001", rank=0)
            solved = not control and i % 3 == 1
            portal_events.finish(
                s, visit, "solved" if solved else "submitted", article_id="KB0001" if solved else None
            )
    SEEDED["done"] = True


def classify(page, base_url: str) -> dict:
    r = page.request.post(
        f"{base_url}/v1/classify",
        data=json.dumps(TICKET),
        headers={"Authorization": f"Bearer {AGENT_KEY}", "Content-Type": "application/json"},
    )
    assert r.ok, r.text()
    return r.json()["result"]["fields"]


def test_accepted_suggestion_shows_in_the_confidence_report(page, base_url, live_app):
    ticket_id = open_ticket(
        live_app,
        {
            "subject": "Laptop screen flickers",
            "body": "The screen flickers when I move the lid.",
            "requester": "kim@acme.example",
            "channel": "email",
        },
    )
    sign_in(page, base_url, key=AGENT_KEY)
    page.goto(f"{base_url}/agent/triage")
    item = page.locator(f".triage-item[data-ticket='{ticket_id}']")
    item.wait_for()
    preferred = item.locator("form:has(.decision-suggest) button.accept")
    accept = preferred.first if preferred.count() else item.locator("button.accept").first
    head = accept.get_attribute("title").split(":", 1)[1].strip()
    label = accept.locator("xpath=../input[@name='value']").get_attribute("value")
    decision = accept.locator("xpath=..//span[contains(@class,'badge')]").inner_text().strip()
    accept.click()
    page.locator(".flash-ok").wait_for()

    page.context.clear_cookies()
    sign_in(page, base_url, key=ADMIN_KEY)
    page.goto(f"{base_url}/admin/reports/confidence#head-{head}")
    row = page.locator(f"#head-{head} tr[data-label='{label}'][data-decision='{decision}']")
    row.wait_for()
    assert int(row.locator("td.confirmed").inner_text()) >= 1
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{base_url}/admin/reports/confidence")
    shot(page, "report-confidence")
    row.scroll_into_view_if_needed()
    shot(page, "report-confidence-overrides")


def test_threshold_change_takes_effect_on_the_next_classification(page, base_url, live_app, clean_policy):
    before = classify(page, base_url)
    head = next(h for h, f in before.items() if f["decision"] != "abstain")
    sign_in(page, base_url, key=ADMIN_KEY)
    page.goto(f"{base_url}/admin/reports/confidence#head-{head}")
    section = page.locator(f"#head-{head}")

    form = section.locator("form.policy-form")
    form.locator(".pf-apply").fill("1.01")
    form.locator("output.estimate").filter(has_text="If saved:").wait_for()
    form.scroll_into_view_if_needed()
    shot(page, "report-confidence-what-if")

    mode = section.locator("form.mode-form")
    mode.locator("input.pf-mode[value='off']").check()
    mode.locator("output.estimate").filter(has_text="If saved").wait_for()
    mode.locator("button[type=submit]").click()
    page.locator(".flash-ok").wait_for()
    assert classify(page, base_url)[head]["decision"] == "abstain"
    assert page.locator(f"#head-{head} .badge.mode-off").count() >= 1
    with store_session(live_app) as s:
        last = policies.history(s, head=head, limit=1)[0]
    assert (last["by"], last["new"]) == ("root", {"mode": "off"})


def test_report_pages_render_and_keep_hostile_text_as_text(page, base_url, live_app, tmp_path):
    open_ticket(
        live_app,
        {
            "subject": f"Odd request {XSS_IMG}",
            "body": f"Please {XSS_IMG} now",
            "requester": "eve@acme.example",
            "channel": "web",
        },
    )
    seed_history(live_app)
    sign_in(page, base_url, key=ADMIN_KEY)
    page.goto(f"{base_url}/admin/reports/confidence")
    assert page.locator(".subject-cell", has_text=XSS_IMG).count() >= 1
    assert page.locator("main img").count() == 0
    for name in ("knowledge", "sla"):
        page.goto(f"{base_url}/admin/reports/{name}")
        page.locator("h1").wait_for()
        assert page.locator("svg.chart").count() >= 1
        shot(page, f"report-{name}")
        if name == "knowledge":  # the hostile article's title is shown as text
            assert page.locator(".subject-cell", has_text=XSS_IMG).count() >= 1
            page.goto(f"{base_url}/admin/reports/knowledge?gap_threshold=0.45")
            page.locator(".gap").first.wait_for()
            page.locator("h2", has_text="Knowledge gaps").scroll_into_view_if_needed()
            shot(page, "report-knowledge-gaps")

    export = page.request.get(f"{base_url}/admin/reports/confidence.html")
    assert export.ok and "attachment" in export.headers["content-disposition"]
    html = export.text()
    assert XSS_IMG not in html
    saved = tmp_path / "confidence.html"
    saved.write_text(html, encoding="utf-8")
    page.goto(saved.as_uri())  # as a person opens the download: no server, no CSP header
    assert page.locator(".subject-cell", has_text=XSS_IMG).count() >= 1
    assert page.locator("img").count() == 0
    shot(page, "report-confidence-export")
