"""axe-core on every page: no serious or critical accessibility violation.

axe-core comes from npm (``scripts/bootstrap.sh`` installs it into the git-ignored
``.npm-tools/``). It is injected into a context that bypasses the page's
Content-Security-Policy, because the policy rightly refuses any script that is
not ours; the pages are otherwise exactly what people get. Each page is checked
signed in as the person who uses it, with data on it (tickets, a report, a desk).
"""

from __future__ import annotations


import pytest

from .harness import ADMIN_KEY, AGENT_KEY, ROOT, VIEWPORT, open_ticket, sign_in, unavailable

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
AXE = ROOT / ".npm-tools" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        unavailable(f"{AXE} not found: run scripts/bootstrap.sh with npm installed")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def axe_page(browser):
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def violations(page, source: str) -> list[dict]:
    page.evaluate(source)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in BLOCKING]


def check(page, source: str, url: str) -> list[str]:
    page.goto(url)
    page.wait_for_load_state("domcontentloaded")
    return [
        f"{url}: {v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in violations(page, source)
    ]


def portal_with_an_open_article(page, source: str, base_url: str) -> list[str]:
    """The portal as a customer uses it: suggestions shown, one article open (it scrolls)."""
    page.goto(f"{base_url}/portal/")
    page.fill(
        "#details", "My password expired and I am locked out of my account, how do I reset my password?"
    )
    page.locator("#suggestion-list .suggestion-title").first.wait_for()
    page.locator("#suggestion-list .suggestion-title").first.click()
    page.locator(".article-text").first.wait_for()
    return [
        f"/portal/ (article open): {v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in violations(page, source)
    ]


def test_every_page_has_no_serious_or_critical_violation(axe_page, axe_source, base_url, live_app):
    ticket = open_ticket(
        live_app,
        {
            "subject": "Printer offline on floor 2",
            "body": "The printer shows offline since this morning.",
            "requester": "axe@acme.example",
            "channel": "web",
        },
    )
    found: list[str] = []
    found += check(axe_page, axe_source, f"{base_url}/signin")
    sign_in(axe_page, base_url, email="axe@acme.example")
    for path in ("/portal/tickets", f"/portal/tickets/{ticket}"):
        found += check(axe_page, axe_source, base_url + path)
    found += portal_with_an_open_article(axe_page, axe_source, base_url)
    axe_page.context.clear_cookies()
    sign_in(axe_page, base_url, key=AGENT_KEY)
    for path in (
        "/agent/",
        "/agent/?view=mine",
        "/agent/triage",
        f"/agent/tickets/{ticket}",
        "/agent/?q=printer",
    ):
        found += check(axe_page, axe_source, base_url + path)
    axe_page.context.clear_cookies()
    sign_in(axe_page, base_url, key=ADMIN_KEY)
    for path in (
        "/admin/desk",
        "/admin/reports/confidence",
        "/admin/reports/knowledge",
        "/admin/reports/sla",
        "/admin/reports/desk",
    ):
        found += check(axe_page, axe_source, base_url + path)
    assert not found, "\n".join(found)
