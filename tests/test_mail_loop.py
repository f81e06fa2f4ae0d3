"""The whole mail loop against a real SMTP server on loopback (aiosmtpd).

A ticket is posted; the "received" mail arrives; the customer answers it and
the answer comes back through the Maildir poller as a comment on the ticket;
the agent's reply arrives with threading headers naming the conversation; the
resolution mail's rating link records a rating. Then the outbox's promise:
a service killed between commit and send loses no mail and sends none twice.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from service.app import create_app
from service.mailer import deliver_once, get_mailer
from service.tickets import get_store
from triage.mail.pollers import MailboxPoller, MaildirSource
from triage.store import inbox, outbound, satisfaction
from triage.store.tables import utcnow

ROOT = Path(__file__).resolve().parents[1]
KEYS = "intake-k:intake,agent-k:agent,admin-k:admin"


class Inbox:
    """aiosmtpd handler keeping every message it accepted."""

    def __init__(self):
        self.messages, self.peers = [], []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content))
        self.peers.append(session.peer)
        return "250 OK"

    def parsed(self, i):
        return email.message_from_bytes(self.messages[i][1], policy=email.policy.default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def app(tmp_path, smtp):
    _, port = smtp
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": KEYS,
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'mail.db'}",
            "TRIAGE_SECRET_KEY": "mail-tests",
            "TRIAGE_SMTP_HOST": "127.0.0.1",
            "TRIAGE_SMTP_PORT": port,
            "TRIAGE_SMTP_SECURITY": "none",
            "TRIAGE_MAIL_FROM": "desk@desk.example",
            "TRIAGE_PUBLIC_URL": "http://desk.example",
            "TRIAGE_ATTACHMENTS_DIR": str(tmp_path / "files"),
        }
    )


def deliver(app):
    with app.app_context():
        return deliver_once(get_store(), get_mailer())


def text_of(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_received_reply_threading_and_rating_through_real_smtp(app, smtp, tmp_path):
    handler, _ = smtp
    client = app.test_client()
    posted = client.post(
        "/v1/tickets",
        headers={"Authorization": "Bearer intake-k"},
        json={
            "subject": "Laptop will not boot",
            "body": "Black screen since this morning.",
            "requester": "cust@example.com",
            "category": "hardware",
            "priority": 3,
            "affected_service": "Laptop fleet",
        },
    )
    assert posted.status_code == 201
    ticket_id = posted.json["ticket"]["id"]
    assert deliver(app)["sent"] == 1
    received = handler.parsed(0)
    assert handler.messages[0][0] == ["cust@example.com"]
    assert received["Subject"] == f"[#TCK-{ticket_id}] We received your request: Laptop will not boot"
    assert received["Auto-Submitted"] == "auto-replied"
    assert str(ticket_id) in text_of(received) and received.get_body(("html",)) is not None

    # the customer answers the mail; it comes back through the Maildir poller
    maildir = tmp_path / "Maildir"
    mailbox.Maildir(str(maildir), create=True).close()
    answer = (
        f"From: Customer <cust@example.com>\nTo: desk@desk.example\n"
        f"Subject: Re: {received['Subject']}\nMessage-ID: <answer-1@example.com>\n"
        f"In-Reply-To: {received['Message-ID']}\nReferences: {received['Message-ID']}\n\n"
        "It shows a blinking cursor now.\n"
    ).encode()
    (maildir / "new" / "0001.answer").write_bytes(answer)
    outcomes = []
    with app.app_context():
        store = get_store()
        MailboxPoller(
            MaildirSource(maildir), lambda m: outcomes.append(inbox.receive_raw(store, m))
        ).poll_once()
    assert [(o.outcome, o.ticket.id) for o in outcomes] == [("threaded", ticket_id)]
    got = client.get(f"/v1/tickets/{ticket_id}", headers={"Authorization": "Bearer agent-k"}).json
    assert [c["body"].strip() for c in got["comments"]] == ["It shows a blinking cursor now."]

    # the agent's public reply arrives as a mail in the same thread
    reply = client.post(
        f"/v1/tickets/{ticket_id}/comments",
        headers={"Authorization": "Bearer agent-k"},
        json={"body": "Please hold the power button for 30 seconds.", "public": True},
    )
    assert reply.status_code == 201
    assert deliver(app)["sent"] == 1
    agent_mail = handler.parsed(1)
    assert agent_mail["In-Reply-To"] == "<answer-1@example.com>"
    assert agent_mail["References"].split() == [received["Message-ID"], "<answer-1@example.com>"]
    assert f"[#TCK-{ticket_id}]" in agent_mail["Subject"]
    assert agent_mail["Auto-Submitted"] == "auto-generated"
    assert "hold the power button" in text_of(agent_mail)

    # resolution mail: the rating link records one rating
    done = client.post(
        f"/v1/tickets/{ticket_id}/transition",
        headers={"Authorization": "Bearer agent-k"},
        json={"to": "resolved"},
    )
    assert done.status_code == 200
    assert deliver(app)["sent"] == 1
    resolved = handler.parsed(2)
    links = re.findall(r"http://desk\.example(/rate/\S+)", text_of(resolved))
    four = next(link for link in links if link.endswith("rating=4"))
    assert client.get(four).status_code == 200
    second = client.get(links[0])  # another click does not overwrite the answer...
    assert second.status_code == 200 and "Change my rating to 5 / 5" in second.text
    with app.app_context(), get_store().session() as s:
        survey = satisfaction.of_ticket(s, ticket_id)
        assert survey.rating == 4
        assert satisfaction.report(s, "category")[0]["n"] == 1
    token = re.search(r'name="csrf_token" value="([^"]+)"', second.text).group(1)
    client.post(four.split("?")[0], data={"csrf_token": token, "rating": "5", "change": "1"})
    with app.app_context(), get_store().session() as s:  # ...but corrects it, within the hour
        assert satisfaction.of_ticket(s, ticket_id).rating == 5
        assert satisfaction.report(s, "category")[0]["n"] == 1
    assert deliver(app)["sent"] == 0 and len(handler.messages) == 3


def test_ticket_text_never_reaches_a_header(app, smtp):
    handler, _ = smtp
    client = app.test_client()
    client.post(
        "/v1/tickets",
        headers={"Authorization": "Bearer intake-k"},
        json={
            "subject": "Help\r\nBcc: victim@evil.example\r\nX-Injected: yes\nSubject: fake",
            "body": "x",
            "requester": "cust@example.com",
        },
    )
    assert deliver(app)["sent"] == 1
    rcpts, raw = handler.messages[0]
    assert rcpts == ["cust@example.com"]
    msg = handler.parsed(0)
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert len(msg.get_all("Subject")) == 1 and "\n" not in msg["Subject"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"\nX-Injected" not in head


def test_a_requester_that_is_not_an_address_gets_no_mail(app, smtp):
    app.test_client().post(
        "/v1/tickets",
        headers={"Authorization": "Bearer intake-k"},
        json={"subject": "s", "body": "b", "requester": "a@b.example\r\nBcc: x@evil.example"},
    )
    assert deliver(app)["sent"] == 0 and smtp[0].messages == []


KILLER = textwrap.dedent("""
    import os, signal, sys
    from triage.store import Store, outbound
    from triage.store.intake import intake
    store = Store(sys.argv[1], schema=sys.argv[3] or None)
    store.upgrade()
    with store.session() as s:   # the mail is committed with the ticket...
        intake(s, {"subject": "Printer on fire", "body": "smoke", "requester": "cust@example.com"},
               actor="cust@example.com")
    if sys.argv[2] == "before-claim":
        os.kill(os.getpid(), signal.SIGKILL)   # ...and the process dies before any delivery
    def send(mail):                            # ...or dies as it is about to send
        os.kill(os.getpid(), signal.SIGKILL)
    outbound.deliver(store, send, domain="desk.example")
""")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def kill_db(request, tmp_path):
    """(URL, schema) of an empty database for a process to die in: SQLite, PostgreSQL (whose
    claim leases rows outside a transaction: a death after that must not lose them either)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill.db'}", ""
        return
    from sqlalchemy import create_engine, text
    from store_support import postgres_or_skip

    url, schema = postgres_or_skip(), f"triage_kill_{os.urandom(5).hex()}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield url, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.parametrize("moment", ["before-claim", "while-sending"])
def test_killed_between_commit_and_send_loses_no_mail_and_sends_none_twice(tmp_path, kill_db, smtp, moment):
    from triage.mail.outbound import Mailer, MailSettings, SmtpTransport
    from triage.store import Store

    handler, port = smtp
    url, schema = kill_db
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), url, moment, schema], env=env, timeout=120)
    assert done.returncode == -9  # SIGKILL: no clean-up ran
    store = Store(url, schema=schema or None)
    mailer = Mailer(MailSettings(from_address="desk@desk.example"), SmtpTransport("127.0.0.1", port, "none"))
    later = utcnow() + timedelta(minutes=5)  # past any lease the dead process held
    first = outbound.deliver(store, mailer.send, domain="desk.example", now=lambda: later)
    second = outbound.deliver(store, mailer.send, domain="desk.example", now=lambda: later)
    mailer.close()
    assert (first["sent"], second["sent"]) == (1, 0)
    assert len(handler.messages) == 1
    with store.session() as s:
        rows = outbound.listing(s)
        assert [(r["template"], r["attempts"], bool(r["delivered_at"])) for r in rows] == [
            ("received", 1, True)
        ]
    store.dispose()


def test_a_refusing_server_is_retried_later_then_sent_once(tmp_path, smtp):
    from triage.mail.outbound import Mailer, MailSettings, SmtpTransport
    from triage.store import Store
    from triage.store.intake import intake

    handler, port = smtp
    store = Store(f"sqlite:///{tmp_path / 'retry.db'}")
    store.upgrade()
    with store.session() as s:
        intake(s, {"subject": "s", "body": "b", "requester": "cust@example.com"}, actor="x")
    down = Mailer(
        MailSettings(from_address="desk@desk.example"),
        SmtpTransport("127.0.0.1", free_port(), "none", timeout=2),
    )
    up = Mailer(MailSettings(from_address="desk@desk.example"), SmtpTransport("127.0.0.1", port, "none"))
    now = utcnow()
    assert outbound.deliver(store, down.send, domain="d.example", now=lambda: now)["retry"] == 1
    assert outbound.deliver(store, up.send, domain="d.example", now=lambda: now)["sent"] == 0
    later = now + timedelta(minutes=5)
    assert outbound.deliver(store, up.send, domain="d.example", now=lambda: later)["sent"] == 1
    up.close()
    down.close()
    assert len(handler.messages) == 1
    with store.session() as s:
        [row] = s.scalars(select(outbound.OutboxMessage)).all()
        assert row.attempts == 2 and row.delivered_at is not None
    store.dispose()


def test_one_delivery_pass_uses_one_smtp_connection(app, smtp):
    handler, _ = smtp
    client = app.test_client()
    for i in range(3):
        client.post(
            "/v1/tickets",
            headers={"Authorization": "Bearer intake-k"},
            json={"subject": f"s{i}", "body": "b", "requester": f"c{i}@example.com"},
        )
    assert deliver(app)["sent"] == 3
    assert len(set(handler.peers)) == 1
    client.post(
        "/v1/tickets",
        headers={"Authorization": "Bearer intake-k"},
        json={"subject": "later", "body": "b", "requester": "d@example.com"},
    )
    assert deliver(app)["sent"] == 1 and len(set(handler.peers)) == 2  # closed after the pass


def test_with_smtp_the_admin_page_hides_sign_in_links(app, smtp):
    from signin_support import TOKEN, request_link

    request_link(app.test_client(), "cust@example.com")
    with app.app_context(), get_store().session() as s:
        [mail] = outbound.listing(s)
    admin = app.test_client()
    token = TOKEN.search(admin.get("/signin").text).group(1)
    admin.post("/signin", data={"csrf_token": token, "kind": "staff", "key": "admin-k"})
    page = admin.get(f"/admin/mail/{mail['id']}")
    assert page.status_code == 200 and "/signin/link/" not in page.text
    assert "/signin/(hidden)" in page.text


def test_a_pass_records_every_outcome_when_they_are_recorded_together(store):
    """Outcomes go in a transaction per OUTCOMES_PER_TRANSACTION mails: each mail's own."""
    from triage.store.intake import intake

    n = outbound.OUTCOMES_PER_TRANSACTION * 2 + 3
    with store.session() as s:
        for i in range(n):
            intake(s, {"subject": f"s{i}", "body": "b", "requester": f"c{i}@example.com"}, actor="x")
    sent, refused = [], {f"c{i}@example.com" for i in (0, 11, n - 1)}

    def send(mail):
        if set(mail["to"]) & refused:
            raise OSError("mailbox full")
        sent.append(mail["id"])

    counts = outbound.deliver(store, send, domain="d.example", limit=n)
    assert counts == {"sent": n - 3, "retry": 3, "failed": 0}
    with store.session() as s:
        rows = outbound.listing(s)
    assert sorted(r["id"] for r in rows if r["delivered_at"]) == sorted(sent)
    assert all(r["attempts"] == 1 for r in rows) and len(rows) == n
    assert sorted(r["to"][0] for r in rows if r["last_error"] == "OSError: mailbox full") == sorted(refused)
