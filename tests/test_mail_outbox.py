"""The outbox keeping up with intake: batched claims, mail written without ``email.message``,
passes back to back, and a ticket's mails in the order they were queued.

Against the real store (SQLite and PostgreSQL) and a real SMTP relay (aiosmtpd on loopback).
"""

from __future__ import annotations

import email
import email.policy
import random
from datetime import timedelta

import pytest
from relay_support import running_relay
from sqlalchemy import event, select

from service.mailer import Rules, deliver_due
from triage.mail.outbound import Composer, FolderTransport, Mailer, MailSettings, SmtpTransport
from triage.store import notices, outbound, tickets
from triage.store.intake import intake
from triage.store.tables import OutboxMessage, utcnow

SETTINGS = MailSettings(
    from_address="desk@desk.example", from_name="Help desk", public_url="http://desk.example"
)


class Relay:
    """aiosmtpd handler keeping what it accepted, and from which connection."""

    def __init__(self):
        self.messages, self.peers = [], []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        self.peers.append(session.peer)
        return "250 OK"

    def parsed(self, i):
        return email.message_from_bytes(self.messages[i][2], policy=email.policy.default)


@pytest.fixture
def relay():
    handler = Relay()
    with running_relay(handler) as port:
        yield handler, port


def a_mail(**changes):
    mail = {
        "id": 1,
        "template": "received",
        "to": ["cust@example.com"],
        "subject": "Printer on fire",
        "message_id": "<m1@desk.example>",
        "ticket_id": 7,
        "auto_submitted": "auto-replied",
        "in_reply_to": "<orig@customer.example>",
        "references": ["<orig@customer.example>"],
        "attachments": [],
        "context": {
            "ticket_id": 7,
            "reference": "TCK-7",
            "ticket_subject": "Printer on fire",
            "status": "new",
            "priority": 3,
            "team": None,
            "summary": "smoke",
            "first_response_due": "2026-12-06T10:00:00+00:00",
            "resolution_due": None,
        },
    }
    return {**mail, **changes}


LONG_LINE = "word " * 40 + "x" * 120
MAILS = {
    "plain": a_mail(),
    "non-ascii subject": a_mail(
        subject="Drucker brennt: Überhitzung",
        context={
            **a_mail()["context"],
            "ticket_subject": "Drucker brennt: Überhitzung " * 6,
            "summary": "Rauch — überall ☃",
        },
    ),
    "long lines and html": a_mail(
        context={
            **a_mail()["context"],
            "summary": f"{LONG_LINE}\n<script>alert(1)</script> & = =20 \t\r\n.end  ",
        }
    ),
    "long references": a_mail(references=[f"<r{i}.{'x' * 40}@desk.example>" for i in range(10)]),
    "no thread": a_mail(in_reply_to=None, references=[]),
    "no due time, no summary": a_mail(
        context={**a_mail()["context"], "summary": "", "first_response_due": None}
    ),
}


def _said(raw: bytes) -> dict:
    """What a reader gets from a message: its headers (not Date) and both bodies."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = {k: str(v) for k, v in msg.items() if k not in ("Date", "Content-Type", "MIME-Version")}
    return {
        "headers": headers,
        "type": msg.get_content_type(),
        "text": msg.get_body(preferencelist=("plain",)).get_content(),
        "html": msg.get_body(preferencelist=("html",)).get_content(),
        "defects": [str(d) for part in msg.walk() for d in part.defects],
    }


@pytest.mark.parametrize("name", list(MAILS))
def test_the_written_mail_says_what_the_composed_message_says(name):
    composer = Composer(SETTINGS)
    mail = MAILS[name]
    written = composer.render(mail)
    ours, theirs = _said(written.data), _said(bytes(composer.compose(mail)))
    assert ours == theirs
    assert ours["defects"] == [] and ours["type"] == "multipart/alternative"
    assert written.data.isascii()  # 7bit or quoted-printable: any relay takes it
    assert max(len(line) for line in written.data.split(b"\n")) <= 998
    assert (written.sender, written.recipients, written.message_id) == (
        "desk@desk.example",
        ["cust@example.com"],
        "<m1@desk.example>",
    )


def test_a_long_ascii_header_is_folded_and_reads_back_whole():
    mail = MAILS["long references"]
    raw = Composer(SETTINGS).render(mail).data
    head = raw.split(b"\n\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\n") if not line.startswith(b"From:"))
    assert _said(raw)["headers"]["References"] == " ".join(mail["references"])


def test_a_mail_with_files_is_composed_by_email(tmp_path):
    data = b"%PDF-1.4 not really"
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / sha[:2] / sha[2:4]).mkdir(parents=True)
    (tmp_path / sha[:2] / sha[2:4] / sha).write_bytes(data)
    settings = MailSettings(from_address="desk@desk.example", attachments_root=str(tmp_path))
    mail = a_mail(attachments=[{"sha256": sha, "filename": "a.pdf", "content_type": "application/pdf"}])
    msg = email.message_from_bytes(Composer(settings).render(mail).data, policy=email.policy.default)
    [part] = list(msg.iter_attachments())
    assert part.get_content() == data and part.get_filename() == "a.pdf"


def test_written_mail_crosses_a_real_relay_and_a_folder_unchanged(relay, tmp_path):
    handler, port = relay
    mail = MAILS["non-ascii subject"]
    mailer = Mailer(SETTINGS, SmtpTransport("127.0.0.1", port, "none"))
    mailer.send(mail)
    mailer.close()
    Mailer(SETTINGS, FolderTransport(tmp_path)).send(mail)
    [file] = list(tmp_path.glob("*.eml"))
    sender, rcpt, content = handler.messages[0]
    assert (sender, rcpt) == ("desk@desk.example", ["cust@example.com"])
    relayed, filed = _said(content.replace(b"\r\n", b"\n")), _said(file.read_bytes())  # CRLF on the wire
    assert relayed == filed and relayed["headers"]["Subject"].startswith("[#TCK-7] ")
    assert "Überhitzung" in relayed["headers"]["Subject"] and "Rauch — überall ☃" in relayed["text"]


# ----------------------------------------------------------------- the store side
def _tickets(store, n, requester="cust{i}@example.com"):
    with store.session() as s:
        made = [
            intake(
                s, {"subject": f"s{i}", "body": "b", "requester": requester.format(i=i)}, actor="x"
            ).ticket.id
            for i in range(n)
        ]
    return made


def _reply(store, ticket_id, text="we are on it"):
    with store.session() as s:
        ticket = tickets.get(s, ticket_id)
        comment, _ = tickets.add_comment(s, ticket, author="agent1", body=text, by_agent=True)
        notices.reply(s, ticket, comment)


def test_a_pass_reads_the_threads_of_its_batch_in_the_same_statements_for_2_mails_or_30(store):
    counts = []
    for n in (2, 30):
        made = _tickets(store, n)
        _reply(store, made[0])  # a ticket with a conversation too
        seen = []

        def count(conn, cursor, statement, *rest, seen=seen):
            seen.append(statement)

        event.listen(store.engine, "before_cursor_execute", count)
        try:
            with store.session() as s:
                assert len(outbound.claim(s, utcnow(), "d.example", limit=100)) == n + 1
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        counts.append(len(seen))
        with store.session() as s:
            s.execute(OutboxMessage.__table__.update().values(delivered_at=utcnow()))
    # the due rows with their tickets (PostgreSQL: leased by that statement), one read of their
    # mail and comments, one UPDATE; SQLite: BEGIN (in round 6: 8 and BEGIN; in round 7: 5)
    assert counts[0] == counts[1] and counts[0] <= 4


@pytest.mark.postgres
def test_two_claims_at_once_never_take_the_same_mail(backend):
    """PostgreSQL: a claim whose lease is not yet committed holds its rows locked; another
    worker's claim (in autocommit, as ``deliver`` runs it) passes over them, takes the rest,
    and once the first commits nobody takes its rows while they are leased."""
    store = backend
    if store.dialect != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's (SQLite's claims queue on its write lock)")
    from store_support import empty

    empty(store)
    _tickets(store, 5)
    now = utcnow()
    with store.session() as first:
        held = outbound.claim(first, now, "d.example", limit=2)  # locked, lease uncommitted
        with store.session() as other:
            other.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            taken = outbound.claim(other, now, "d.example", limit=10)
    assert len(held) == 2 and len(taken) == 3
    assert not {m["id"] for m in held} & {m["id"] for m in taken}
    with store.session() as late:
        assert outbound.claim(late, now, "d.example", limit=10) == []  # all leased now


def test_one_batch_threads_a_reply_to_the_receipt_sent_with_it(store):
    [ticket_id] = _tickets(store, 1)
    _reply(store, ticket_id)
    sent = []
    assert outbound.deliver(store, sent.append, domain="d.example")["sent"] == 2
    receipt, reply = sent
    assert (receipt["template"], reply["template"]) == ("received", "reply")
    assert reply["in_reply_to"] == receipt["message_id"] and reply["references"] == [receipt["message_id"]]


def test_a_later_mail_of_a_ticket_waits_while_an_earlier_one_is_leased_elsewhere(store):
    [ticket_id] = _tickets(store, 1)
    [other] = _tickets(store, 1, requester="someone{i}@example.com")
    _reply(store, ticket_id)
    with store.session() as s:  # another worker holds the receipt (the oldest mail)
        [held] = outbound.claim(s, utcnow(), "d.example", limit=1)
    assert held["ticket_id"] == ticket_id and held["template"] == "received"
    sent = []
    outbound.deliver(store, sent.append, domain="d.example")
    assert [(m["ticket_id"], m["template"]) for m in sent] == [(other, "received")]  # not the reply
    outbound._record(  # the other worker's send succeeded
        store, [(held["id"], None)], utcnow(), {"sent": 0, "retry": 0, "failed": 0}
    )
    outbound.deliver(store, sent.append, domain="d.example")
    assert [(m["ticket_id"], m["template"]) for m in sent][1:] == [(ticket_id, "reply")]
    assert sent[1]["in_reply_to"] == held["message_id"]


def test_a_failed_mail_holds_back_the_rest_of_its_ticket_until_it_is_sent(store):
    [ticket_id, other] = _tickets(store, 2)
    _reply(store, ticket_id)
    tried = []

    def refuse_the_first_receipt(mail):
        tried.append((mail["ticket_id"], mail["template"]))
        if mail["ticket_id"] == ticket_id:
            raise OSError("mailbox full")

    now = utcnow()
    counts = outbound.deliver(store, refuse_the_first_receipt, domain="d.example", now=lambda: now)
    assert tried == [(ticket_id, "received"), (other, "received")]  # the reply was not tried
    assert counts == {"sent": 1, "retry": 2, "failed": 0}
    with store.session() as s:
        attempts = dict(
            s.execute(
                select(OutboxMessage.event, OutboxMessage.attempts).where(
                    OutboxMessage.ticket_id == ticket_id
                )
            ).all()
        )
    assert attempts == {"mail.received": 1, "mail.reply": 0}
    assert outbound.deliver(store, tried.append, domain="d.example", now=lambda: now)["sent"] == 0
    later = now + timedelta(minutes=5)
    sent = []
    assert outbound.deliver(store, sent.append, domain="d.example", now=lambda: later)["sent"] == 2
    assert [m["template"] for m in sent] == ["received", "reply"]
    assert sent[1]["in_reply_to"] == sent[0]["message_id"]


def test_a_batch_still_unsent_at_half_its_lease_is_let_go_unattempted(store):
    _tickets(store, 5)
    clock = [utcnow()]
    sent = []

    def slow_relay(mail):
        sent.append(mail["id"])
        clock[0] += outbound.LEASE / 4  # the third mail would go out past half the lease

    counts = outbound.deliver(store, slow_relay, domain="d.example", now=lambda: clock[0])
    assert len(sent) == 3 and counts == {"sent": 3, "retry": 2, "failed": 0}
    with store.session() as s:
        rows = outbound.listing(s)
    waiting = [r for r in rows if r["delivered_at"] is None]
    assert len(waiting) == 2 and all(r["attempts"] == 0 for r in waiting)
    rest = []
    assert outbound.deliver(store, rest.append, domain="d.example", now=lambda: clock[0])["sent"] == 2


def test_passes_run_back_to_back_through_one_relay_connection_until_the_outbox_is_drained(store, relay):
    handler, port = relay
    _tickets(store, 25)
    mailer = Mailer(SETTINGS, SmtpTransport("127.0.0.1", port, "none"))
    counts = deliver_due(store, mailer, Rules(batch=10))
    assert counts["sent"] == 25 and len(handler.messages) == 25
    assert len(set(handler.peers)) == 1  # one connection for the three passes, closed after
    assert deliver_due(store, mailer, Rules(batch=10))["sent"] == 0
    with store.session() as s:
        assert all(r["delivered_at"] and r["attempts"] == 1 for r in outbound.listing(s))


def test_a_round_without_hooks_leaves_queued_webhooks_to_a_round_with_them(store):
    """The loop's rounds rung only by this process's mail skip the webhook pass (a claim
    of its own): a webhook waits for the next round that looks (its own ring, the
    watcher's, the interval's)."""
    from triage.store import webhooks

    _tickets(store, 2)
    with store.session() as s:
        webhooks.register(s, "http://127.0.0.1:9/hook", "k")  # nothing listens: a retry
        webhooks.queue(s, "ticket.escalated", {"id": 1})
    sent = []

    class Keeping:
        settings = SETTINGS

        def send(self, mail):
            sent.append(mail["id"])

        def close(self):
            pass

    counts = deliver_due(store, Keeping(), Rules(webhook_allow="127.0.0.1"), hooks=False)  # type: ignore[arg-type]
    assert counts == {"sent": 2, "retry": 0, "failed": 0} and len(sent) == 2
    with store.session() as s:
        assert [m.attempts for m in webhooks.pending(s)] == [0]
    counts = deliver_due(store, Keeping(), Rules(webhook_allow="127.0.0.1"))  # type: ignore[arg-type]
    assert counts["webhook_retry"] == 1
    with store.session() as s:
        assert [m.attempts for m in webhooks.pending(s)] == [1]


def test_a_pass_with_a_failure_ends_the_round(store):
    _tickets(store, 25)
    seen = []

    class Refusing:
        settings = SETTINGS

        def send(self, mail):
            seen.append(mail["id"])
            if len(seen) == 3:
                raise OSError("relay busy")

        def close(self):
            pass

    counts = deliver_due(store, Refusing(), Rules(batch=10))  # type: ignore[arg-type]
    assert (counts["sent"], counts["retry"], len(seen)) == (9, 1, 10)


def test_a_requester_opening_ticket_after_ticket_gets_at_most_n_receipts_an_hour(store):
    """The mail-loop guard: the 4th ticket of one requester within the hour gets no notice."""
    start = utcnow() - timedelta(minutes=30)
    with store.session() as s:
        for i in range(5):
            intake(
                s,
                {"subject": f"auto {i}", "body": "b", "requester": "bot@acme.example"},
                actor="x",
                now=start + timedelta(minutes=i),
            )
        intake(s, {"subject": "human", "body": "b", "requester": "cust@example.com"}, actor="x", now=start)
    sent = []
    counts = outbound.deliver(store, sent.append, domain="d.example", receipts_per_hour=3)
    assert sorted(m["subject"] for m in sent) == ["auto 0", "auto 1", "auto 2", "human"]
    assert counts["sent"] == 4
    with store.session() as s:
        held = [r for r in outbound.listing(s) if not r["delivered_at"]]
    assert sorted(r["subject"] for r in held) == ["auto 3", "auto 4"]
    assert all(r["failed"] and "TRIAGE_MAIL_RECEIPTS_PER_HOUR" in r["last_error"] for r in held)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_guard_holds_back_exactly_the_tickets_past_the_limit_in_any_batches(store, seed):
    """Requesters' tickets at random times over 3 hours (ties included), delivered in small
    batches: the held-back notices are those of the tickets with ``per_hour`` or more of their
    requester's tickets in the hour before (by time, then id), counted here from the tickets
    themselves. PostgreSQL reads at most ``per_hour`` of them per notice (``_opened_bounded``),
    SQLite the whole window: both must decide the same."""
    rng = random.Random(seed)
    start = utcnow() - timedelta(hours=3)
    per_hour = 3
    made = []
    with store.session() as s:
        for i in range(60):
            requester = f"r{rng.randrange(4)}@acme.example"
            at = start + timedelta(minutes=rng.randrange(0, 180, 5))  # every 5 minutes: ties
            ticket = intake(s, {"subject": f"s{i}", "body": "b", "requester": requester}, actor="x", now=at)
            made.append((ticket.ticket.id, requester, at))
    expected = {
        f"s{n}"
        for n, (tid, who, at) in enumerate(made)
        if sum(
            o_who == who and at - timedelta(hours=1) <= o_at and (o_at, o_id) < (at, tid)
            for o_id, o_who, o_at in made
        )
        >= per_hour
    }
    assert 0 < len(expected) < len(made)  # the seeds give both kinds
    sent: list = []
    for _ in range(12):  # 60 in batches of 7: a notice's earlier tickets mostly in other batches
        outbound.deliver(store, sent.append, domain="d.example", limit=7, receipts_per_hour=per_hour)
    with store.session() as s:
        held = {r["subject"] for r in outbound.listing(s) if r["failed"]}
    assert held == expected
    assert len(sent) == len(made) - len(expected)


def test_tickets_an_hour_apart_each_get_their_receipt_and_0_means_no_limit(store):
    start = utcnow() - timedelta(hours=5)
    with store.session() as s:
        for i in range(4):  # one every 61 minutes: never 2 within the hour before another
            intake(
                s,
                {"subject": f"s{i}", "body": "b", "requester": "bot@acme.example"},
                actor="x",
                now=start + timedelta(minutes=61 * i),
            )
        for i in range(4):  # 4 at once, limit off
            intake(
                s, {"subject": f"t{i}", "body": "b", "requester": "many@acme.example"}, actor="x", now=start
            )
    sent = []
    assert outbound.deliver(store, sent.append, domain="d.example", receipts_per_hour=0)["sent"] == 8
    _tickets(store, 3, requester="bot@acme.example")  # now: 0 in the hour before the first
    assert outbound.deliver(store, sent.append, domain="d.example", receipts_per_hour=1)["sent"] == 1
