"""Who is told what by mail, and what the admin sees: notices, reminders, pages, templates.

Mail goes to the folder transport here (no SMTP configured: the demo's way),
so the tests read the ``.eml`` files the desk would have sent.
"""

from __future__ import annotations

import email
import email.policy
import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mail_corpus import PNG
from service.app import create_app
from service.mailer import deliver_once, get_mailer
from service.store import get_store
from signin_support import TOKEN, customer_client
from triage.store import clocks, inbox, mail_log, notices, routing, tickets
from triage.store.intake import intake
from triage.store.tables import Agent, Team

KEYS = "intake-k:intake,agent-k:agent,admin-k:admin"


@pytest.fixture
def app(tmp_path):
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": KEYS,
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_MAIL_DIR": str(tmp_path / "out"),
            "TRIAGE_ATTACHMENTS_DIR": str(tmp_path / "files"),
            "TRIAGE_MAIL_FROM": "desk@desk.example",
        }
    )


def sent(tmp_path):
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted((tmp_path / "out").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


def deliver(app):
    with app.app_context():
        return deliver_once(get_store(), get_mailer())


def staff(app, key="admin-k"):
    client = app.test_client()
    token = TOKEN.search(client.get("/signin").text).group(1)
    client.post("/signin", data={"csrf_token": token, "kind": "staff", "key": key})
    return client


def test_deadline_notice_reaches_the_assignee_and_the_team_lead_before_the_breach(app, tmp_path):
    now = datetime.now(timezone.utc)
    with app.app_context(), get_store().session() as s:
        routing.upsert_agent(s, "bob", teams=["Network"])
        s.get(Agent, "bob").email = "bob@desk.example"
        team = s.scalars(select(Team).where(Team.name == "Network")).one()
        team.escalation_contacts = ["lead@desk.example", "bob"]
        made = intake(
            s,
            {
                "subject": "Switch down",
                "body": "b",
                "team": "Network",
                "requester": "c@example.com",
                "priority": 3,
            },
            actor="x",
            now=now,
        )
        row = made.ticket
        row.assignee = "bob"
        assert notices.staff_addresses(s, row) == {
            "assignee": ["bob@desk.example"],
            "team_lead": ["lead@desk.example", "bob@desk.example"],
        }
        fired = [clocks.Fired(row.id, "first_response", 1, "warn", now + timedelta(minutes=15))]
        notices.deadline(s, fired, now)
        notices.deadline(s, fired, now)  # a second sweep of the same level: no second mail
    assert deliver(app)["sent"] == 2  # received (customer) + one notice
    [notice] = [m for m in sent(tmp_path) if "SLA" in m["Subject"]]
    assert sorted(a.strip() for a in notice["To"].split(",")) == ["bob@desk.example", "lead@desk.example"]
    assert notice["Subject"].startswith(f"[#TCK-{row.id}] SLA deadline approaching (first response)")
    assert notice["Auto-Submitted"] == "auto-generated"


def test_a_pending_ticket_gets_one_reminder_per_pending_spell(app, tmp_path):
    now = datetime.now(timezone.utc) - timedelta(hours=100)  # reminders are due by now
    with app.app_context(), get_store().session() as s:
        row = intake(
            s,
            {
                "subject": "Need info",
                "body": "b",
                "requester": "c@example.com",
                "category": "x",
                "priority": 3,
                "affected_service": "VPN",
            },
            actor="x",
            now=now,
        ).ticket
        routing.upsert_agent(s, "bob")
        row.assignee = "bob"
        tickets.transition(s, row, "assigned", actor="bob", now=now)
        tickets.transition(s, row, "pending", actor="bob", now=now)
        assert notices.remind_pending(s, now + timedelta(hours=47), timedelta(hours=48)) == 0
        assert notices.remind_pending(s, now + timedelta(hours=49), timedelta(hours=48)) == 1
        assert notices.remind_pending(s, now + timedelta(hours=90), timedelta(hours=48)) == 0
    deliver(app)
    subjects = [m["Subject"] for m in sent(tmp_path)]
    assert any(s.startswith(f"[#TCK-{row.id}] Waiting for your reply") for s in subjects)


def test_an_agent_reply_with_a_file_mails_the_file(app, tmp_path):
    client = app.test_client()
    tid = client.post(
        "/v1/tickets",
        headers={"Authorization": "Bearer intake-k"},
        json={"subject": "Screen", "body": "b", "requester": "c@example.com"},
    ).json["ticket"]["id"]
    agent = staff(app, "agent-k")
    token = TOKEN.search(agent.get(f"/agent/tickets/{tid}").text).group(1)
    posted = agent.post(
        f"/agent/tickets/{tid}/comment",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "body": "See the picture.",
            "public": "1",
            "file": (io.BytesIO(PNG), "howto.png", "image/png"),
        },
    )
    assert posted.status_code == 302
    deliver(app)
    reply = next(m for m in sent(tmp_path) if m["Subject"].startswith(f"[#TCK-{tid}] Re:"))
    [part] = list(reply.iter_attachments())
    assert part.get_filename() == "howto.png" and part.get_content() == PNG


def test_the_customer_replies_with_a_file_and_rates_on_the_portal(app, tmp_path):
    client = app.test_client()
    tid = client.post(
        "/v1/tickets",
        headers={"Authorization": "Bearer intake-k"},
        json={
            "subject": "Printer",
            "body": "b",
            "requester": "c@example.com",
            "category": "x",
            "priority": 3,
            "affected_service": "Printing",
        },
    ).json["ticket"]["id"]
    customer, _ = customer_client(app, "c@example.com")
    token = TOKEN.search(customer.get(f"/portal/tickets/{tid}").text).group(1)
    bad = customer.post(
        f"/portal/tickets/{tid}/reply",
        content_type="multipart/form-data",
        data={"csrf_token": token, "body": "fake", "file": (io.BytesIO(b"<html>"), "x.png", "image/png")},
    )
    assert bad.status_code == 302
    assert "Nothing was sent" in customer.get(f"/portal/tickets/{tid}").text
    ok = customer.post(
        f"/portal/tickets/{tid}/reply",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "body": "Photo of the error",
            "file": (io.BytesIO(PNG), "error.png", "image/png"),
        },
    )
    assert ok.status_code == 302
    page = customer.get(f"/portal/tickets/{tid}").text
    assert ">error.png</a>" in page and ">x.png</a>" not in page and "fake" not in page
    agent = client.post(
        f"/v1/tickets/{tid}/transition", headers={"Authorization": "Bearer agent-k"}, json={"to": "resolved"}
    )
    assert agent.status_code == 200
    page = customer.get(f"/portal/tickets/{tid}").text
    assert "How did we do?" in page
    token = TOKEN.search(page).group(1)
    customer.post(f"/portal/tickets/{tid}/rate", data={"csrf_token": token, "rating": "2", "comment": "slow"})
    assert "You rated this request <strong>2 / 5</strong>" in customer.get(f"/portal/tickets/{tid}").text
    report = staff(app).get("/admin/reports/satisfaction")
    assert report.status_code == 200 and "satisfaction-team" in report.text


def test_admin_pages_show_the_outbox_and_replay_refusals(app, tmp_path):
    customer_client(app, "c@example.com")  # the outbox now holds a sign-in mail
    admin = staff(app)
    outbox = admin.get("/admin/mail/")
    assert outbox.status_code == 200 and "Your sign-in link" in outbox.text
    with app.app_context(), get_store().session() as s:
        mail_id = s.scalars(select(mail_log.MailRefusal.id)).first()
        assert mail_id is None
        from triage.store.tables import OutboxMessage

        first = s.scalars(select(OutboxMessage.id).where(OutboxMessage.kind == "mail")).first()
    one = admin.get(f"/admin/mail/{first}")
    assert one.status_code == 200 and "/signin/link/" in one.text and 'class="mail-link"' in one.text
    with app.app_context():
        refused = inbox.receive_raw(
            get_store(), b"From: a@example.com\nSubject: Automatic reply: x\nMessage-ID: <ar@x>\n\nAway\n"
        )
    page = admin.get("/admin/mail/refused")
    assert "auto-reply" in page.text
    raw = admin.get(f"/admin/mail/refused/{refused.refusal_id}.eml")
    assert raw.headers["Content-Disposition"].startswith("attachment") and b"Away" in raw.data
    token = TOKEN.search(page.text).group(1)
    admin.post(f"/admin/mail/refused/{refused.refusal_id}/replay", data={"csrf_token": token})
    assert "replayed: created ticket" in admin.get("/admin/mail/refused").text
    customer, _ = customer_client(app, "x@example.com")
    assert customer.get("/admin/mail/").status_code == 403


def received_vars(**given):
    """The variables a ``received`` notice is rendered with, ``given`` on top."""
    return {
        "summary": "",
        "first_response_due": None,
        "portal_url": "http://d",
        "desk_name": "Desk",
        "mail_subject": "s",
        "attachments": [],
        **given,
    }


def test_a_template_folder_overrides_the_shipped_templates(tmp_path):
    from triage.mail.templates import Templates

    (tmp_path / "received.subject.txt").write_text("Ticket {{ ticket_id }} is ours now")
    subject, text, html = Templates(tmp_path).render(
        "received", received_vars(ticket_id=7, reference="TCK-7", ticket_subject="<b>x</b>")
    )
    assert subject == "Ticket 7 is ours now"
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" in text


def test_an_overriding_template_sees_jinjas_globals_and_a_missing_name_still_fails(tmp_path):
    """The templates are rendered with the environment's globals (``range``, ``namespace``, ...)
    beside the notice's variables, a variable winning over a global of its name, as
    ``Template.render`` does; and they stay strict about names nobody gave."""
    import jinja2

    from triage.mail.templates import Templates

    context = received_vars(
        ticket_id=3, reference="TCK-3", ticket_subject="x", lipsum="mine"
    )  # a jinja global's name
    (tmp_path / "received.subject.txt").write_text("{{ range(ticket_id) | list | length }} {{ lipsum }}")
    (tmp_path / "received.txt").write_text("{% set ns = namespace(n=2) %}{{ ns.n }} {{ desk_name }}")
    subject, text, _ = Templates(tmp_path).render("received", context)
    assert (subject, text) == ("3 mine", "2 Desk")
    (tmp_path / "received.txt").write_text("{{ nowhere }}")
    with pytest.raises(jinja2.UndefinedError, match="nowhere"):
        Templates(tmp_path).render("received", context)


def test_the_escalation_sweep_queues_the_deadline_notice(app, tmp_path):
    from triage.rules import RuleSet
    from triage.store.tables import OutboxMessage

    rules = RuleSet.load(None)
    now = datetime.now(timezone.utc) - timedelta(days=3)
    with app.app_context(), get_store().session() as s:
        routing.upsert_agent(s, "bob", teams=["Network"])
        s.get(Agent, "bob").email = "bob@desk.example"
        row = intake(
            s,
            {
                "subject": "Core switch down",
                "body": "b",
                "team": "Network",
                "requester": "c@example.com",
                "priority": 2,
                "category": "network",
                "affected_service": "Wi-Fi",
            },
            actor="x",
            ruleset=rules,
            now=now,
            auto_assign=False,
        ).ticket
        row.assignee = "bob"
        fired = clocks.sweep(s, now + timedelta(days=2))
        assert fired, "the default policy's levels should have been reached"
        notices_queued = s.scalars(select(OutboxMessage).where(OutboxMessage.event == "mail.deadline")).all()
        assert len(notices_queued) == len(fired)
        assert all(m.payload["to"] == ["bob@desk.example"] for m in notices_queued)
        assert clocks.sweep(s, now + timedelta(days=2)) == []  # each level once, so each notice once


def test_a_new_portal_request_may_carry_files(app):
    customer, _ = customer_client(app, "c@example.com")
    page = customer.get("/portal/").text
    token = TOKEN.search(page).group(1)
    form = {
        "csrf_token": token,
        "subject": "Printer error",
        "details": "See photo",
        "affected": "printing",
        "people": "me",
        "work": "partly",
    }
    refused = customer.post(
        "/portal/submit",
        content_type="multipart/form-data",
        data={**form, "file": (io.BytesIO(b"<svg/>"), "a.png", "image/png")},
    )
    assert refused.status_code == 422 and "declared image/png" in refused.text
    made = customer.post(
        "/portal/submit",
        content_type="multipart/form-data",
        data={**form, "file": (io.BytesIO(PNG), "photo.png", "image/png")},
    )
    assert made.status_code == 302
    ticket_page = customer.get(made.location).text
    assert ">photo.png</a>" in ticket_page


def test_a_rating_can_be_corrected_only_within_the_hour(app):
    from triage.store import satisfaction

    now = datetime.now(timezone.utc)
    with app.app_context(), get_store().session() as s:
        row = intake(s, {"subject": "s", "body": "b", "requester": "c@example.com"}, actor="x").ticket
        survey = satisfaction.request(s, row)
        assert satisfaction.answer(s, survey, 5, now=now - timedelta(minutes=30))
        assert not satisfaction.answer(s, survey, 1)  # one answer per ticket
        assert satisfaction.change(s, survey, 2, now=now) and survey.rating == 2
        survey.answered_at = now - timedelta(hours=2)
        s.flush()
        assert not satisfaction.change(s, survey, 4, now=now) and survey.rating == 2


def test_the_default_settings_can_write_mail(tmp_path):
    """No mail settings at all (the demo): the default From still makes a valid mail."""
    app = create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": KEYS,
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_MAIL_DIR": str(tmp_path / "out"),
        }
    )
    app.test_client().post(
        "/v1/tickets",
        headers={"Authorization": "Bearer intake-k"},
        json={"subject": "s", "body": "b", "requester": "c@example.com"},
    )
    assert deliver(app)["sent"] == 1
    [mail] = sent(tmp_path)
    assert mail["From"] == "Help desk <helpdesk@localhost>"


def test_a_requester_in_display_name_form_is_stored_as_the_address_and_hears_back(app, tmp_path):
    """``Ann Example <ann@acme.example>`` (pasted from a mail client) was stored as given: the
    outbox mails one plain address, so the customer was told nothing. A name with no address in
    it, and a plain id, stay as given."""
    client = app.test_client()
    made = {
        given: client.post(
            "/v1/tickets",
            headers={"Authorization": "Bearer intake-k"},
            json={"subject": f"Printer {n}", "body": "jammed again", "requester": given},
        )
        for n, given in enumerate(["Ann Example <ann@acme.example>", "Team <printers>", "u-1042"])
    }
    assert {r.status_code for r in made.values()} == {201}
    stored = {given: r.json["ticket"]["requester"] for given, r in made.items()}
    assert stored == {
        "Ann Example <ann@acme.example>": "ann@acme.example",
        "Team <printers>": "Team <printers>",
        "u-1042": "u-1042",
    }
    deliver(app)
    assert [m["To"] for m in sent(tmp_path)] == ["ann@acme.example"]
