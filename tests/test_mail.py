"""E-mail intake: the .eml samples in tests/data/mail, threading, loop protection, polling.

The IMAP path is tested twice: against a stub of the ``imaplib`` client (the
call order SEARCH UNSEEN → FETCH BODY.PEEK[] → handler → STORE \\Seen) and
through the real ``imaplib`` against tests/fake_imap.py on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import mailbox
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from triage.htmltext import html_to_text
from triage.mail import decode_bytes, find_reference, parse_message, tag_subject
from triage.mailboxes import ImapSource, MailboxPoller, MaildirSource, MboxSource

DATA = Path(__file__).parent / "data" / "mail"


def load(name: str) -> dict:
    return parse_message((DATA / name).read_bytes())


@pytest.mark.parametrize("path", sorted(DATA.glob("*.eml")), ids=lambda p: p.name)
def test_every_sample_parses_to_the_full_shape(path):
    intake = parse_message(path.read_bytes())
    assert intake["subject"] and intake["model_text"] and intake["message_id"]
    assert intake["date"].tzinfo is not None
    assert intake["from"]["address"].count("@") == 1
    assert "\ufffd" not in intake["subject"] + intake["model_text"]
    assert intake["channel"] == "email"


def test_multipart_alternative_prefers_plain_text_and_reads_addresses():
    m = load("multipart_alternative.eml")
    assert m["body"].startswith("Hi team,\n\nThe HP printer next to room 3.14 jams")
    assert "<div" in m["body_html"] and "<div" not in m["body"]
    assert m["from"] == {"name": "Dana Fictive", "address": "dana.fictive@example.com"}
    assert [a["address"] for a in m["cc"]] == ["lee.sample@example.com", "ops-team@example.com"]
    assert m["to"][0]["name"] == "IT Service Desk"
    assert m["date"] == datetime(2026, 11, 24, 8, 14, 3, tzinfo=timezone.utc)
    assert m["model_body"].endswith("We already tried new paper.")  # signature cut
    assert m["attachments"] == [] and not m["auto_reply"] and find_reference(m) is None


def test_html_only_body_becomes_text():
    m = load("html_only.eml")
    assert m["subject"] == "Laptop won\u2019t charge \u2013 urgent".replace("\u2019", "'")
    assert "My laptop won't charge \u2013 the LED stays off & the battery is at 4%." in m["body"]
    assert "- Model: ThinkPad T14\n- Asset tag: LT-0042" in m["body"]
    assert "trackOpen" not in m["body"] and "font-family" not in m["body"]
    assert "Form submission" not in m["body"]  # <title> is not body text
    assert m["date"].utcoffset() == timedelta(hours=-5)


def test_html_to_text_blocks_quotes_and_entities():
    text = html_to_text(
        "<p>A&nbsp;&lt;b&gt;</p><div>one<br>two</div>"
        "<blockquote>old <b>reply</b></blockquote><script>x()</script>"
    )
    assert text == "A <b>\n\none\ntwo\n> old reply"


@pytest.mark.parametrize(
    "name, subject, phrase",
    [
        ("latin1.eml", "Serveur de fichiers inaccessible à la comptabilité", "comptabilité ne répond plus"),
        (
            "windows1252.eml",
            "Expenses app rejects receipts",
            "The \u201cExpenses\u201d app rejects every receipt over \u20ac500 \u2013",
        ),
        ("iso2022jp.eml", "VPNに接続できません", "今朝からVPNに接続できません。"),
        ("koi8r.eml", "Портал сломал", "Портал не открывается с утра."),
    ],
)
def test_non_utf8_charsets(name, subject, phrase):
    m = load(name)
    assert m["subject"] == subject
    assert phrase in m["body"]
    assert m["warnings"] == []


def test_encoded_word_display_names():
    assert load("latin1.eml")["from"]["name"] == "Zoé Exemple"
    assert load("iso2022jp.eml")["from"]["name"] == "山田 花子"


def test_broken_charset_declaration_falls_back_with_a_warning():
    m = load("broken_charset.eml")
    assert m["subject"] == "Drucker im Büro 4"
    assert "Der Drucker im Büro 4 druckt nur noch leere Seiten. Grüße, Kim" in m["body"]
    assert any("x-broken-8bit" in w for w in m["warnings"])


def test_mojibake_is_kept_in_body_and_repaired_for_the_model():
    m = load("mojibake.eml")
    assert "CafÃ©" in m["body"]  # stored as received
    assert "the café booking tool shows" in m["model_text"]
    assert "müller's team" in m["model_text"]


@pytest.mark.parametrize(
    "data, declared, text, charset",
    [
        ("café €".encode("cp1252"), "utf-8", "café €", "cp1252"),  # lying label
        ("café".encode("utf-8"), "iso-8859-1", "café", "utf-8"),  # UTF-8 labelled latin-1
        ("“q”".encode("cp1252"), "iso-8859-1", "“q”", "cp1252"),  # WHATWG: latin-1 is 1252
        (b"plain", None, "plain", "utf-8"),
        (b"\x81\x8d\xff", "utf-8", "\x81\x8d\xff", "latin-1"),  # nothing fits: never raise
    ],
)
def test_decode_bytes_fallbacks(data, declared, text, charset):
    got, used, _ = decode_bytes(data, declared)
    assert got == text and used == charset


def test_garbage_and_empty_input_never_raise():
    for raw in (
        b"",
        b"\x00\xff\xfe garbage",
        b"Subject: =?bogus?b?!!!?=\r\n\r\n\xff",
        b'From: <<<>>>\r\nDate: yesterday\r\nContent-Type: text/plain; charset="\r\n\r\nx',
    ):
        intake = parse_message(raw)
        assert "\x00" not in intake["body"]
    with pytest.raises(TypeError):
        parse_message("a str has lost its bytes")  # type: ignore[arg-type]


def test_mutated_samples_never_raise_and_give_storable_text():
    """300 random byte mutations of the samples: no exception, no surrogates or NULs out."""
    rng = random.Random(7)
    samples = [p.read_bytes() for p in sorted(DATA.glob("*.eml"))]
    junk = [
        b"=?",
        b"?=",
        b"\r\n",
        b"--",
        b"charset=",
        b"\x00",
        b"<",
        b";",
        b"\xff\xfe",
        b"=?utf-8?b?",
        b"Content-Type: message/rfc822\r\n",
        b"filename*=",
    ]
    for _ in range(300):
        raw = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(raw))
            op = rng.random()
            if op < 0.4:
                raw[i] = rng.randrange(256)
            elif op < 0.7:
                del raw[i : i + rng.randint(1, 30)]
            else:
                raw[i:i] = rng.choice(junk)
        m = parse_message(bytes(raw))
        texts = [m["subject"], m["body"], m["model_text"], m["from"]["name"]]
        texts += [a["filename"] for a in m["attachments"]] + m["references"]
        for text in texts:
            text.encode("utf-8")  # raises on lone surrogates
        assert "\x00" not in m["body"] + m["subject"]


def test_charset_label_with_8bit_bytes_and_attached_message():
    raw = (
        b"Subject: =?ko\xdc8-r?b?8MXS1MHM?=\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b'--b\r\nContent-Type: text/plain; charset="iso-8859-\xa8"\r\n\r\nd\xe9j\xe0 vu\r\n'
        b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nforwarded \xe9\r\n"
        b"--b--\r\n"
    )
    m = parse_message(raw)
    assert m["body"].startswith("d\xe9j\xe0 vu") and m["warnings"]
    (att,) = m["attachments"]
    assert att["content_type"] == "message/rfc822" and att["filename"].endswith(".eml")
    assert b"Subject: inner" in att["data"]


def test_attachments_pdf_and_image_with_checksums_and_safe_names():
    m = load("attachments.eml")
    pdf, png = m["attachments"]
    assert (pdf["filename"], pdf["content_type"]) == ("invoice-2026-118.pdf", "application/pdf")
    assert pdf["data"].startswith(b"%PDF-1.4") and pdf["size"] == len(pdf["data"])
    assert pdf["sha256"] == hashlib.sha256(pdf["data"]).hexdigest()
    assert png["content_type"] == "image/png" and png["data"].startswith(b"\x89PNG")
    assert png["filename"] == "Fehlerübersicht.png"  # "../../" stripped
    assert m["body"].startswith("When I upload the attached invoice")


def test_reply_with_subject_tag_is_a_follow_up_and_history_is_stripped():
    m = load("reply_subject_tag.eml")
    assert find_reference(m) == "TCK-42"
    assert "we have reset the printer" in m["body"]  # raw body keeps the history
    assert m["model_body"] == "It jammed again just now, this time with a paper-feed error on tray 2."


def test_reply_matched_only_by_in_reply_to():
    m = load("reply_in_reply_to.eml")
    sent = {"<tck-42.notify.3@helpdesk.example.org>": "TCK-42"}
    assert find_reference(m) is None  # no tag in the subject
    assert find_reference(m, lookup=sent.get) == "TCK-42"
    assert m["references"][0] == "<CAF1a2b3c4d5e6f7@mail.example.com>"
    assert m["model_body"] == "Confirmed, it works now. You can close it."


def test_references_header_is_searched_newest_first():
    intake = {
        "subject": "Re: [#TCK-9] x",
        "in_reply_to": "<unknown@x>",
        "references": ["<a@ours>", "<b@ours>"],
    }
    asked = []
    sent = {"<a@ours>": "TCK-1", "<b@ours>": "TCK-2"}
    assert find_reference(intake, lookup=lambda mid: asked.append(mid) or sent.get(mid)) == "TCK-2"
    assert asked == ["<unknown@x>", "<b@ours>"]
    assert find_reference(intake, lookup=lambda mid: None) == "TCK-9"  # subject is the fallback


def test_custom_reference_pattern_and_tag_subject():
    intake = {"subject": "AW: Drucker (Ticket INC0012345)"}
    assert find_reference(intake, pattern=r"ticket (INC\d{7})") == "INC0012345"
    assert tag_subject("TCK-7", "Printer") == "[#TCK-7] Printer"
    assert tag_subject("TCK-7", "Re: [#TCK-7] Printer") == "Re: [#TCK-7] Printer"


def test_outlook_forward_keeps_the_forwarded_problem_for_the_model():
    m = load("outlook_forward.eml")
    assert m["is_forward"]
    assert "access denied" in m["model_text"] and "please see below" in m["model_text"]
    assert "sent: wednesday" not in m["model_text"]


def test_auto_reply_is_flagged():
    m = load("auto_reply.eml")
    assert m["auto_reply"] and m["auto_reply_reason"].startswith("Auto-Submitted")
    for header in (
        "X-Autoreply: yes",
        "Precedence: bulk",
        "Precedence: junk",
        "From: MAILER-DAEMON@mx.example.org",
        "Subject: Out of Office: back Monday",
    ):
        assert parse_message(f"{header}\r\n\r\nx".encode())["auto_reply"], header
    assert not parse_message(b"Auto-Submitted: no\r\nSubject: hi\r\n\r\nx")["auto_reply"]
    assert not parse_message(b"Precedence: list\r\nList-Id: <desk.example.org>\r\n\r\nx")["auto_reply"]
    for subject in ("Out of office replies not working", "Undeliverable mail to finance"):
        assert not parse_message(f"Subject: {subject}\r\n\r\nx".encode())["auto_reply"], subject


# ------------------------------------------------------------------ pollers
def _raw(n: int) -> bytes:
    return (
        f"From: user{n}@example.com\r\nSubject: problem {n}\r\n"
        f"Message-ID: <m{n}@example.com>\r\n\r\nbody {n}\r\n"
    ).encode()


def _flaky_handler(fail_on: set[str], seen: list[str]):
    def handle(intake):
        if intake["subject"] in fail_on:
            raise RuntimeError("store down")
        seen.append(intake["subject"])

    return handle


def test_maildir_poller_acks_only_after_the_handler_succeeds(tmp_path):
    box = mailbox.Maildir(str(tmp_path / "md"), create=True)
    for n in range(3):
        box.add(_raw(n))
    seen: list[str] = []
    poller = MailboxPoller(MaildirSource(tmp_path / "md"), _flaky_handler({"problem 1"}, seen))
    report = poller.poll_once()
    assert (report.handled, report.failed, seen) == (2, 1, ["problem 0", "problem 2"])
    assert poller.poll_once().failed == 1  # the failed one is retried, not lost
    poller.handler = _flaky_handler(set(), seen)
    assert poller.poll_once().handled == 1 and seen[-1] == "problem 1"
    assert poller.poll_once().handled == 0
    assert len(list((tmp_path / "md" / "cur").iterdir())) == 3


def test_maildir_messages_come_in_delivery_order_within_one_second(tmp_path):
    # Maildir names carry microseconds without zero padding: as text, M1000 sorts before M999
    box = mailbox.Maildir(str(tmp_path / "md"), create=True)
    box.close()
    names = ["1700000000.M999P7Q1.host", "1700000000.M1000P7Q2.host", "1700000001.M5P7Q3.host"]
    for n, name in enumerate(reversed(names)):  # written in another order than delivered
        (tmp_path / "md" / "new" / name).write_bytes(_raw(len(names) - 1 - n))
    pending = [key for key, _ in MaildirSource(tmp_path / "md").pending()]
    assert pending == names


def test_mbox_poller_marks_read(tmp_path):
    box = mailbox.mbox(str(tmp_path / "inbox"), create=True)
    for n in range(2):
        box.add(_raw(n))
    box.close()
    seen: list[str] = []
    poller = MailboxPoller(MboxSource(tmp_path / "inbox"), _flaky_handler({"problem 0"}, seen))
    assert poller.poll_once().handled == 1
    poller.handler = _flaky_handler(set(), seen)
    assert poller.poll_once().handled == 1
    assert poller.poll_once().handled == 0 and seen == ["problem 1", "problem 0"]


class StubImap:
    """The subset of imaplib.IMAP4 the source uses, recording each call."""

    def __init__(self, messages: dict[str, bytes]) -> None:
        self.messages, self.seen, self.calls = messages, set(), []

    def login(self, user, password):
        self.calls.append(("login", user))
        return "OK", [b"logged in"]

    def select(self, folder):
        self.calls.append(("select", folder))
        return "OK", [str(len(self.messages)).encode()]

    def uid(self, command, *args):
        self.calls.append((command, *args))
        if command == "SEARCH":
            return "OK", [" ".join(u for u in self.messages if u not in self.seen).encode()]
        if command == "FETCH":
            uid = args[0]
            assert args[1] == "(BODY.PEEK[])"  # fetching must not mark the message seen
            return "OK", [(f"{uid} (UID {uid} BODY[] {{99}}".encode(), self.messages[uid]), b")"]
        if command == "STORE":
            self.seen.add(args[0])
            return "OK", []
        raise AssertionError(command)

    def logout(self):
        self.calls.append(("logout",))
        return "BYE", []


def test_imap_poller_stores_seen_only_after_handler_returns():
    stub = StubImap({"7": _raw(7), "9": _raw(9)})
    seen: list[str] = []
    source = ImapSource("imap.example.org", "desk", "secret", connect=lambda: stub)
    poller = MailboxPoller(source, _flaky_handler({"problem 9"}, seen))
    report = poller.poll_once()
    assert (report.handled, report.failed, stub.seen) == (1, 1, {"7"})
    commands = [c[0] for c in stub.calls]
    assert commands == ["login", "select", "SEARCH", "FETCH", "STORE", "FETCH", "logout"]
    poller.handler = _flaky_handler(set(), seen)
    assert poller.poll_once().handled == 1 and stub.seen == {"7", "9"}


def test_imap_poller_against_a_fake_server_on_localhost():
    from fake_imap import FakeImap

    with FakeImap({"7": _raw(7), "9": _raw(9)}) as server:
        seen: list[str] = []
        source = ImapSource("127.0.0.1", "desk", "secret", port=server.port, ssl=False)
        report = MailboxPoller(source, _flaky_handler({"problem 7"}, seen)).poll_once()
        assert (report.handled, report.failed, seen, server.seen) == (1, 1, ["problem 9"], {"9"})
        assert server.commands.count("UID STORE") == 1 and server.commands[-1] == "LOGOUT"
        report = MailboxPoller(source, _flaky_handler(set(), seen)).poll_once()
        assert report.handled == 1 and server.seen == {"7", "9"}
        bad = ImapSource("127.0.0.1", "desk", "wrong", port=server.port, ssl=False)
        with pytest.raises(Exception):
            MailboxPoller(bad, _flaky_handler(set(), seen)).poll_once()


def test_inline_text_parts_around_an_image_are_all_body():
    raw = (
        b"From: a@example.com\r\nSubject: screen\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe screen shows this:\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n\r\nPNG\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nand then it freezes.\r\n"
        b"--b\r\nContent-Type: text/plain; name=log.txt\r\nContent-Disposition: attachment; "
        b"filename=log.txt\r\n\r\nlog line\r\n--b--\r\n"
    )
    m = parse_message(raw)
    assert m["body"] == "The screen shows this:\n\nand then it freezes."
    assert [a["filename"] for a in m["attachments"]] == ["attachment-1.png", "log.txt"]
