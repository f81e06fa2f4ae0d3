"""Intake that loses nothing: a generated corpus through the Maildir and mbox pollers.

Every message must end as exactly one of created / threaded / duplicate /
refused, as the corpus says (tests/mail_corpus.py), with the refusals kept
whole in the dead-letter table, whatever headers (``Status: RO``...) the
messages carry. Then the rules one by one: de-duplication on Message-ID +
sender + content, reused IDs, replay of a refusal, attachments kept by content.
"""

from __future__ import annotations

import mailbox
from collections import Counter
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

import mail_corpus
from triage.mail import parse_message
from triage.mail.pollers import MailboxPoller, MaildirSource, MboxSource
from triage.store import attachments, inbox, mail_log, tickets
from triage.store.tables import TicketRow

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
CORPUS = mail_corpus.build()


def write_maildir(path, items):
    box = mailbox.Maildir(str(path), create=True)
    box.close()
    for i, item in enumerate(items):  # names in corpus order: the poller reads sorted keys
        (path / "new" / f"{i:04d}.corpus").write_bytes(item.raw)
    return path


def write_mbox(path, items):
    box = mailbox.mbox(str(path), create=True)
    for item in items:
        box.add(item.raw)
    box.flush()
    box.close()
    return path


def poll(store, source, files=None, batched=False):
    outcomes = []

    def handle(message):
        outcomes.append(inbox.receive_raw(store, message, now=NOW, files=files).outcome)

    def handle_many(messages):
        got = inbox.receive_many(store, messages, now=NOW, files=files)
        outcomes.extend(r.outcome for r in got)
        return got

    if batched:  # 7 a batch: the corpus crosses batch (and group) boundaries
        report = MailboxPoller(source, handle_many=handle_many, batch=7).poll_once()
    else:
        report = MailboxPoller(source, handle).poll_once()
    return report, outcomes


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "receive_many"])
@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_every_message_of_the_corpus_is_accounted_for(store, tmp_path, kind, batched):
    assert len(CORPUS) >= 60
    if kind == "maildir":
        source = MaildirSource(write_maildir(tmp_path / "Maildir", CORPUS))
    else:
        source = MboxSource(write_mbox(tmp_path / "inbox.mbox", CORPUS))
    files = attachments.Files(tmp_path / "files")
    report, outcomes = poll(store, source, files, batched)
    assert report.failed == 0 and report.handled == len(CORPUS)
    wrong = [(item.name, item.expected, got) for item, got in zip(CORPUS, outcomes) if item.expected != got]
    assert wrong == []
    counts = Counter(outcomes)
    assert counts == mail_corpus.expected_counts(CORPUS)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(TicketRow)) == counts["created"]
        refused = mail_log.listing(s)
        assert len(refused) == counts["refused"]
        assert all(r["reason"] for r in refused)
        kept = s.scalars(select(mail_log.MailRefusal)).all()
        assert {bytes(r.raw) for r in kept} >= {
            i.raw for i in CORPUS if i.expected == "refused" and i.raw.strip()
        }
    again = MboxSource(source.path) if kind == "mbox" else MaildirSource(tmp_path / "Maildir")
    report, outcomes = poll(store, again, batched=batched)
    assert (report.handled, outcomes) == (0, [])  # everything was acknowledged once


def test_a_reused_message_id_opens_a_new_ticket_with_a_warning(store):
    first = parse_message(b"From: a@example.com\nSubject: One\nMessage-ID: <same@x>\n\nFirst.\n")
    other_sender = parse_message(b"From: b@example.com\nSubject: One\nMessage-ID: <same@x>\n\nFirst.\n")
    other_text = parse_message(
        b"From: a@example.com\nSubject: One\nMessage-ID: <same@x>\n\nSomething else.\n"
    )
    with store.session() as s:
        a = inbox.receive(s, first, now=NOW)
        b = inbox.receive(s, other_sender, now=NOW)
        c = inbox.receive(s, other_text, now=NOW)
        again = inbox.receive(s, first, now=NOW)
        assert [r.outcome for r in (a, b, c, again)] == ["created", "created", "created", "duplicate"]
        assert len({a.ticket.id, b.ticket.id, c.ticket.id}) == 3 and again.ticket.id == a.ticket.id
        assert any("used before" in w for w in b.ticket.extra["mail_warnings"])
        assert any("used before" in w for w in c.warnings)


def test_a_refusal_is_kept_and_can_be_replayed(store):
    raw = b"From: a@example.com\nSubject: Out of office: away\nMessage-ID: <ooo@x>\n\nAway.\n"
    got = inbox.receive_raw(store, raw, now=NOW)
    assert got.outcome == "refused" and got.reason.startswith("auto-reply")
    with store.session() as s:
        [row] = mail_log.listing(s)
        assert row["sender"] == "a@example.com" and row["size"] == len(raw)
    replayed = inbox.replay(store, got.refusal_id, now=NOW)
    assert replayed.outcome == "created"
    with store.session() as s:
        assert mail_log.listing(s) == []
        [row] = mail_log.listing(s, include_replayed=True)
        assert row["replay_result"] == f"created ticket {replayed.ticket.id}"
    with pytest.raises(Exception):
        inbox.replay(store, got.refusal_id, now=NOW)  # once


def test_a_handler_failure_becomes_a_refusal_not_a_loss(store, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("rules file vanished")

    monkeypatch.setattr(inbox, "intake", broken)
    got = inbox.receive_raw(store, b"From: a@example.com\nSubject: Hi\n\nHello\n", now=NOW)
    assert got.outcome == "refused" and "rules file vanished" in got.reason
    with store.session() as s:
        assert len(mail_log.listing(s)) == 1 and tickets.query(s) == []


def test_mail_attachments_are_stored_by_content(store, tmp_path):
    files = attachments.Files(tmp_path / "files")
    item = next(i for i in CORPUS if i.name == "attachment-png")
    bad = next(i for i in CORPUS if i.name == "attachment-mislabelled")
    got = inbox.receive_raw(store, item.raw, now=NOW, files=files)
    worse = inbox.receive_raw(store, bad.raw, now=NOW, files=files)
    with store.session() as s:
        [png] = attachments.of_ticket(s, got.ticket.id)
        assert (png.filename, png.content_type) == ("shot.png", "image/png")
        assert files.read(png.sha256) == mail_corpus.PNG
        [kept] = attachments.of_ticket(s, worse.ticket.id)
        assert kept.content_type == attachments.OCTET  # a mail's wrong label is not believed
        assert any("declared image/png" in w for w in worse.warnings)


def test_an_oversize_mail_attachment_keeps_the_whole_message(store, tmp_path):
    files = attachments.Files(tmp_path / "files", max_file_bytes=10)
    item = next(i for i in CORPUS if i.name == "attachment-png")
    got = inbox.receive_raw(store, item.raw, now=NOW, files=files)
    assert got.outcome == "created" and any("over the limit" in w for w in got.warnings)
    with store.session() as s:
        assert attachments.of_ticket(s, got.ticket.id) == []
        [row] = s.scalars(select(mail_log.MailRefusal)).all()
        assert bytes(row.raw) == item.raw and "attachment not stored" in row.reason


class ListSource:
    """A source in memory: which keys were acked, and what the store held at each ack."""

    def __init__(self, store, raws):
        self.store, self.raws, self.acked, self.stored_at_ack = store, raws, [], []

    def pending(self):
        yield from ((str(i), raw) for i, raw in enumerate(self.raws) if str(i) not in self.acked)

    def ack(self, key):
        with self.store.session(readonly=True) as s:  # another session: sees only what is committed
            self.stored_at_ack.append(s.scalar(select(func.count()).select_from(TicketRow)))
        self.acked.append(key)

    def close(self):
        pass


def mails(n):
    return [
        f"From: u{i}@example.com\nSubject: Printer {i}\nMessage-ID: <p{i}@x>\n\nJammed.\n".encode()
        for i in range(n)
    ]


def test_batched_polling_acks_each_message_only_after_its_commit(store):
    source = ListSource(store, mails(5))
    report = MailboxPoller(source, handle_many=lambda ms: inbox.receive_many(store, ms, now=NOW)).poll_once()
    assert (report.handled, report.failed) == (5, 0) and source.acked == ["0", "1", "2", "3", "4"]
    assert all(n == 5 for n in source.stored_at_ack)  # one group: all five committed before any ack


def test_batched_polling_acks_nothing_when_the_batch_handler_fails(store):
    source = ListSource(store, mails(3))

    def broken(messages):
        raise RuntimeError("database gone")

    report = MailboxPoller(source, handle_many=broken).poll_once()
    assert (report.handled, report.failed, source.acked) == (0, 3, [])
    report = MailboxPoller(source, handle_many=lambda ms: inbox.receive_many(store, ms, now=NOW)).poll_once()
    assert report.handled == 3  # read again on the next poll, nothing lost


def test_a_failing_message_in_a_batch_is_kept_as_a_refusal_and_the_others_stored(store, monkeypatch):
    real = inbox.write  # a new ticket's writes (its row went in with the group's: create_many)

    def picky(session, item, **kwargs):
        if "Printer 1" in item.payload["subject"]:
            raise RuntimeError("rules file vanished")
        return real(session, item, **kwargs)

    monkeypatch.setattr(inbox, "write", picky)
    got = inbox.receive_many(store, mails(3), now=NOW)
    assert [r.outcome for r in got] == ["created", "refused", "created"]
    assert "rules file vanished" in got[1].reason
    with store.session() as s:
        assert len(mail_log.listing(s)) == 1 and len(tickets.query(s)) == 2


def test_a_reply_in_the_same_batch_threads_onto_the_ticket_its_first_message_made(store):
    first = b"From: a@example.com\nSubject: VPN down\nMessage-ID: <v1@x>\n\nSince 9.\n"
    reply = b"From: a@example.com\nSubject: Re: VPN down\nMessage-ID: <v2@x>\nIn-Reply-To: <v1@x>\n\nStill.\n"
    again = first
    got = inbox.receive_many(store, [first, reply, again], now=NOW)
    assert [r.outcome for r in got] == ["created", "threaded", "duplicate"]
    assert got[1].ticket.id == got[0].ticket.id == got[2].ticket.id


def _ticket_inserts(store, work, table="tickets"):
    """``work()``'s INSERT statements into ``table``."""
    from sqlalchemy import event

    seen = []

    def count(conn, cursor, statement, *rest):
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        result = work()
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    return result, len(seen)


def test_a_poll_of_new_mail_inserts_its_tickets_with_one_statement(store):
    got, inserts = _ticket_inserts(store, lambda: inbox.receive_many(store, mails(12), now=NOW))
    assert [r.outcome for r in got] == ["created"] * 12 and inserts == 1
    assert [r.ticket.message_id for r in got] == [f"<p{i}@x>" for i in range(12)]
    assert all(r.ticket.requester == f"u{i}@example.com" for i, r in enumerate(got))
    again, inserts = _ticket_inserts(store, lambda: inbox.receive_many(store, mails(12), now=NOW))
    assert [r.outcome for r in again] == ["duplicate"] * 12 and inserts == 0
    assert [r.ticket.id for r in again] == [r.ticket.id for r in got]  # a replay answers the same ticket
    with store.session() as s:
        assert len(tickets.query(s)) == 12
        notices = s.scalars(select(func.count()).select_from(outbound_table())).one()
    assert notices == 12  # one received notice each, as one by one


def test_a_poll_of_new_mail_remembers_its_messages_with_one_statement(store):
    """The received_mail rows a replay is compared with: one INSERT for the poll's new
    tickets (SQLite wrote one per message), and each message found again by its Message-ID."""
    got, inserts = _ticket_inserts(
        store, lambda: inbox.receive_many(store, mails(12), now=NOW), "received_mail"
    )
    assert [r.outcome for r in got] == ["created"] * 12 and inserts == 1
    with store.session() as s:
        kept = {m.message_id: m for m in s.scalars(select(mail_log.ReceivedMail))}
    assert sorted(kept) == sorted(f"<p{i}@x>" for i in range(12))
    assert all(kept[f"<p{i}@x>"].ticket_id == r.ticket.id for i, r in enumerate(got))
    assert all(
        m.outcome == "created" and m.sender == f"u{i}@example.com"
        for i, m in enumerate(kept[f"<p{i}@x>"] for i in range(12))
    )
    again = [inbox.receive_raw(store, raw, now=NOW) for raw in mails(12)[:2]]  # one at a time
    assert [r.outcome for r in again] == ["duplicate"] * 2


def outbound_table():
    from triage.store.tables import OutboxMessage

    return OutboxMessage.__table__


def test_a_batch_gives_the_same_tickets_as_one_message_at_a_time(store, backend):
    one_by_one = [inbox.receive_raw(store, raw, now=NOW) for raw in mails(4)]
    with store.session() as s:
        first = [tickets.to_dict(t) for t in tickets.query(s)]
    from store_support import empty

    empty(backend)
    batched = inbox.receive_many(store, mails(4), now=NOW)
    with store.session() as s:
        second = [tickets.to_dict(t) for t in tickets.query(s)]
    drop = {"id", "reference", "url", "links"}

    def same(rows):
        return sorted(
            ({k: v for k, v in r.items() if k not in drop} for r in rows), key=lambda r: r["subject"]
        )

    assert [r.outcome for r in one_by_one] == [r.outcome for r in batched] == ["created"] * 4
    assert same(first) == same(second)


def test_a_planned_mail_that_turns_out_a_follow_up_is_received_again_alone(store, monkeypatch):
    """Planned as a new ticket; by its transaction the message it answers was stored (by
    another poller): its ticket row is rolled back and it threads, as one by one."""
    original = b"From: a@example.com\nSubject: VPN down\nMessage-ID: <v1@x>\n\nSince 9.\n"
    reply = b"From: a@example.com\nSubject: Re: VPN down\nMessage-ID: <v2@x>\nIn-Reply-To: <v1@x>\n\nStill.\n"
    plans = inbox._plans

    def then_another_poller_stores_the_original(store_, messages, kwargs):
        out = plans(store_, messages, kwargs)
        assert out[0] is not None  # the reply looked like a new ticket when it was planned
        inbox.receive_raw(store, original, now=NOW)
        return out

    monkeypatch.setattr(inbox, "_plans", then_another_poller_stores_the_original)
    got = inbox.receive_many(store, [reply, mails(1)[0]], now=NOW)
    assert [r.outcome for r in got] == ["threaded", "created"]
    with store.session() as s:
        [first] = [t for t in tickets.query(s) if t.message_id == "<v1@x>"]
        assert got[0].ticket.id == first.id and len(tickets.query(s)) == 2  # no orphan ticket


def test_a_planned_mail_stored_meanwhile_by_another_poller_answers_its_ticket(store, monkeypatch):
    plans = inbox._plans
    stored = []

    def then_another_poller_stores_it(store_, messages, kwargs):
        out = plans(store_, messages, kwargs)
        stored.append(inbox.receive_raw(store, mails(1)[0], now=NOW))
        return out

    monkeypatch.setattr(inbox, "_plans", then_another_poller_stores_it)
    got = inbox.receive_many(store, mails(2), now=NOW)
    assert [r.outcome for r in got] == ["duplicate", "created"]
    assert got[0].ticket.id == stored[0].ticket.id
    with store.session() as s:
        assert len(tickets.query(s)) == 2
