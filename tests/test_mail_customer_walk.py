"""The customer's side of a ticket's whole life, by mail, on both stores.

Received notice -> the agent's reply -> the customer answers by mail (threads back by
In-Reply-To/References, or by the ``[#TCK-n]`` subject tag when a client drops the headers)
-> resolved -> the customer answers the resolution (the ticket reopens) -> resolved again ->
closed -> the customer answers the closed ticket (a new ticket, a follow-up of the old one,
told so). Every mail goes through the outbox to a real SMTP relay (aiosmtpd on loopback);
every answer comes back through ``inbox.receive_raw`` as raw bytes.
"""

from __future__ import annotations

import email
import email.policy

import pytest
from relay_support import running_relay

from triage.mail.outbound import Mailer, MailSettings, SmtpTransport
from triage.store import inbox, notices, outbound, tickets
from triage.store.intake import intake
from triage.store.tables import TicketRow

SETTINGS = MailSettings(
    from_address="desk@desk.example", from_name="Help desk", public_url="http://desk.example"
)
CUSTOMER = "cust@example.com"


class Relay:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def relay():
    handler = Relay()
    with running_relay(handler) as port:
        yield handler, Mailer(SETTINGS, SmtpTransport("127.0.0.1", port, "none"))


def _send(store, mailer) -> int:
    try:
        return outbound.deliver(store, mailer.send, domain=SETTINGS.domain)["sent"]
    finally:
        mailer.close()


def _answer(to_mail, body: str, n: int, *, headers: bool = True) -> bytes:
    """The customer's answer to ``to_mail`` (``headers`` False: a client that drops them)."""
    lines = [
        f"From: Customer <{CUSTOMER}>",
        "To: desk@desk.example",
        f"Subject: Re: {to_mail['Subject']}",
        f"Message-ID: <answer-{n}@example.com>",
        "Date: Sun, 06 Dec 2026 21:00:00 +0000",
    ]
    if headers:
        refs = " ".join([*(to_mail.get("References") or "").split(), to_mail["Message-ID"]])
        lines += [f"In-Reply-To: {to_mail['Message-ID']}", f"References: {refs}"]
    quoted = "\n".join("> " + line for line in to_mail.get_body(("plain",)).get_content().splitlines())
    return ("\n".join(lines) + f"\n\n{body}\n\nOn Sunday the desk wrote:\n{quoted}\n").encode()


def _agent(store, ticket_id, **change):
    with store.session() as s:
        ticket = tickets.get(s, ticket_id)
        if "reply" in change:
            comment, _ = tickets.add_comment(s, ticket, author="agent1", body=change["reply"], by_agent=True)
            notices.reply(s, ticket, comment)
        if "to" in change:
            tickets.transition(s, ticket, change["to"], actor="agent1", resolution=change.get("resolution"))


def _status(store, ticket_id) -> str:
    with store.session() as s:
        return s.get(TicketRow, ticket_id).status


def test_a_ticket_s_whole_life_by_mail(store, relay):
    handler, mailer = relay
    with store.session() as s:
        opened = intake(
            s,
            {
                "subject": "Printer on fire",
                "body": "It smokes.",
                "requester": CUSTOMER,
                "category": "hardware",
                "affected_service": "Printers",
            },
            actor="x",
        )
        tid = opened.ticket.id
        s.get(TicketRow, tid).priority = 3
    tag = f"[#TCK-{tid}]"
    assert _send(store, mailer) == 1
    received = handler.messages[-1]
    assert received["Subject"] == f"{tag} We received your request: Printer on fire"

    _agent(store, tid, reply="Please unplug it.")
    assert _send(store, mailer) == 1
    reply = handler.messages[-1]
    assert reply["In-Reply-To"] == received["Message-ID"] and tag in reply["Subject"]

    # the customer answers by mail: threads back, without the quoted history
    got = inbox.receive_raw(store, _answer(reply, "Unplugged, still smoking.", 1))
    assert (got.outcome, got.ticket.id) == ("threaded", tid)
    # a client that drops the headers: the subject tag threads it
    got = inbox.receive_raw(store, _answer(reply, "Now it beeps.", 2, headers=False))
    assert (got.outcome, got.ticket.id) == ("threaded", tid)

    _agent(store, tid, to="resolved", resolution="fixed")
    assert _send(store, mailer) == 1
    resolved = handler.messages[-1]
    assert tag in resolved["Subject"] and "<answer-2@example.com>" in resolved["References"]

    # an answer to the resolution reopens the ticket
    got = inbox.receive_raw(store, _answer(resolved, "It caught fire again.", 3))
    assert (got.outcome, got.ticket.id) == ("threaded", tid)
    assert _status(store, tid) == "in_progress"

    _agent(store, tid, to="resolved", resolution="fixed")
    _agent(store, tid, to="closed")
    assert _send(store, mailer) == 1
    resolved_again = handler.messages[-1]

    # an answer to a closed ticket opens a new one, a follow-up of the old, and says so
    got = inbox.receive_raw(store, _answer(resolved_again, "Smoke again, a week later.", 4))
    assert got.outcome == "created" and got.ticket.id != tid
    new = got.ticket.id
    assert _status(store, tid) == "closed"
    with store.session() as s:
        follow_up = s.get(TicketRow, new)
        assert follow_up.extra.get("follow_up_of") == tid
        assert follow_up.subject == "Printer on fire"  # not "Re: [#TCK-n] Resolved: ..."
    assert _send(store, mailer) == 1
    notice = handler.messages[-1]
    assert notice["Subject"] == f"[#TCK-{new}] We received your request: Printer on fire"
    assert notice["In-Reply-To"] == "<answer-4@example.com>"
    assert f"TCK-{tid}" in notice.get_body(("plain",)).get_content()  # tells which it follows up

    # the customer's next answer goes to the new ticket, not the closed one
    got = inbox.receive_raw(store, _answer(notice, "Any news?", 5))
    assert (got.outcome, got.ticket.id) == ("threaded", new)
    got = inbox.receive_raw(store, _answer(notice, "Any news at all?", 6, headers=False))
    assert (got.outcome, got.ticket.id) == ("threaded", new)
