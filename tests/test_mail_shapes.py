"""Real-world mail shapes through the mail intake, and auto-replies that must not loop.

Each message is built here in a shape mail clients and servers send (nothing copied):
TNEF ``winmail.dat``, calendar invitations and answers, delivery reports with and without
``multipart/report``, out-of-office replies in the languages Outlook writes them in,
charset lies, a missing ``From``, huge headers, raw 8-bit and UTF-8 headers, broken RFC
2047 words, nested multiparts and attachment names that climb directories. Through the
store (SQLite and PostgreSQL): every message has the outcome it should, none through the
"handling failed" fallback. Through the app with the folder transport: an out-of-office
answer or a bounce of our received notice is refused and sends nothing back.
"""

from __future__ import annotations

import base64
import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.app import create_app
from service.mailer import deliver_once, get_mailer
from service.store import get_store
from triage.store import inbox, mail_log
from triage.store.tables import Comment, TicketRow


def _msg(
    headers: list[tuple[str, str]], body: str | bytes, ctype: str = "text/plain; charset=utf-8"
) -> bytes:
    head = (
        "".join(f"{k}: {v}\r\n" for k, v in headers) + f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n"
    )
    return head.encode("utf-8") + (body if isinstance(body, bytes) else body.encode("utf-8"))


ANN = [
    ("From", "Ann <ann@acme.example>"),
    ("To", "desk@desk.example"),
    ("Date", "Mon, 30 Nov 2026 09:00:00 +0100"),
]
TNEF = base64.encodebytes(b"\x78\x9f\x3e\x22" + b"\x00" * 64).decode()
ICS = (
    "BEGIN:VCALENDAR\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\nSUMMARY:Laptop handover\r\n"
    "DTSTART:20261201T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _id(name: str) -> list[tuple[str, str]]:
    return [("Message-ID", f"<{name}@acme.example>")]


def _ooo(name: str, subject: str) -> tuple[str, bytes, str]:
    return (
        name,
        _msg(ANN + _id(name) + [("Subject", f"{subject} [#TCK-1] Printer")], "Away until Monday."),
        "refused",
    )


SHAPES: list[tuple[str, bytes, str]] = [
    (
        "tnef_winmail",
        _msg(
            ANN + _id("tnef") + [("Subject", "Printer on floor 3 is jammed")],
            "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe printer is jammed again.\r\n"
            '--b1\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="winmail.dat"\r\n\r\n' + TNEF + "--b1--\r\n",
            'multipart/mixed; boundary="b1"',
        ),
        "created",
    ),
    (
        "tnef_only",  # Outlook's rich text, nothing readable outside winmail.dat
        _msg(
            ANN + _id("tnefonly") + [("Subject", "Scanner broken")],
            '--b1\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + TNEF + "--b1--\r\n",
            'multipart/mixed; boundary="b1"',
        ),
        "created",
    ),
    (
        "calendar_invitation",  # someone invites the desk: a note, the event, an .ics
        _msg(
            ANN + _id("cal") + [("Subject", "Invitation: Laptop handover @ Tue 1 Dec")],
            '--b2\r\nContent-Type: multipart/alternative; boundary="b3"\r\n\r\n'
            "--b3\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease bring the old laptop.\r\n"
            "--b3\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n"
            + ICS.format(method="REQUEST")
            + "--b3--\r\n--b2\r\nContent-Type: application/ics; name=invite.ics\r\n"
            "Content-Disposition: attachment; filename=invite.ics\r\n\r\n"
            + ICS.format(method="REQUEST")
            + "--b2--\r\n",
            'multipart/mixed; boundary="b2"',
        ),
        "created",
    ),
    (
        "calendar_answer",  # "Accepted:" is a calendar object, not a request (before: a ticket of ICS text)
        _msg(
            ANN + _id("calreply") + [("Subject", "Accepted: Laptop handover")],
            ICS.format(method="REPLY"),
            "text/calendar; charset=utf-8; method=REPLY",
        ),
        "refused",
    ),
    (
        "dsn_report",
        _msg(
            [("From", "Mail Delivery System <MAILER-DAEMON@mx.acme.example>"), ("To", "desk@desk.example")]
            + _id("dsn")
            + [("Subject", "Undelivered Mail Returned to Sender")],
            "--b4\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
            "--b4\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.example\r\n\r\n"
            "Final-Recipient: rfc822; bob@acme.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "--b4\r\nContent-Type: message/rfc822\r\n\r\nFrom: desk@desk.example\r\n"
            "Subject: [#TCK-1] We received your request\r\n\r\nhello\r\n--b4--\r\n",
            'multipart/report; report-type=delivery-status; boundary="b4"',
        ),
        "refused",
    ),
    (
        "exchange_ndr",  # Exchange's report as plain text from its system mailbox (before: a ticket)
        _msg(
            [
                (
                    "From",
                    "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@acme.example>",
                ),
                ("To", "desk@desk.example"),
                ("Subject", "Undeliverable: [#TCK-1] We received your request"),
            ]
            + _id("ndr"),
            "Delivery has failed to these recipients or groups:\r\nbob@acme.example\r\n",
        ),
        "refused",
    ),
    # Outlook's out-of-office subjects when no Auto-Submitted header came (before: tickets)
    _ooo("ooo_outlook_old", "Out of Office AutoReply:"),
    _ooo("ooo_de", "Automatische Antwort:"),
    _ooo("ooo_it", "Risposta automatica:"),
    _ooo("ooo_es", "Respuesta automática:"),
    _ooo("ooo_nl", "Automatisch antwoord:"),
    _ooo("ooo_sv", "Autosvar:"),
    _ooo("ooo_fi", "Automaattinen vastaus:"),
    (
        "auto_submitted",
        _msg(
            ANN + _id("as") + [("Subject", "Re: request"), ("Auto-Submitted", "auto-replied (vacation)")],
            "away",
        ),
        "refused",
    ),
    (
        "people_write_these_subjects",  # a person's words, not a client's prefix: a ticket
        _msg(ANN + _id("human") + [("Subject", "Undeliverable mail to finance since Monday")], "Bounces."),
        "created",
    ),
    (
        "missing_from",
        _msg([("To", "desk@desk.example"), ("Subject", "No sender")] + _id("nofrom"), "who"),
        "created",
    ),
    (
        "huge_headers",
        _msg(
            ANN
            + _id("huge")
            + [("Subject", "S" * 20_000), ("X-Junk", "a" * 200_000)]
            + [("References", " ".join(f"<r{i}@x.example>" for i in range(5000)))],
            "body",
        ),
        "created",
    ),
    (
        "eight_bit_latin1_headers",
        b"From: J\xf6rg M\xfcller <joerg@acme.example>\r\nTo: desk@desk.example\r\n"
        b"Subject: Drucker kaputt \xe4\xf6\xfc\r\nMessage-ID: <8bit@acme.example>\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nDer Drucker ist kaputt. Gr\xfc\xdfe\r\n",
        "created",
    ),
    (
        "raw_utf8_headers",
        "From: Zoë <zoe@acme.example>\r\nTo: desk@desk.example\r\nSubject: Écran noir 日本\r\n"
        "Message-ID: <u8@acme.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nL'écran est noir.\r\n".encode(),
        "created",
    ),
    (
        "broken_encoded_words",
        _msg(
            ANN
            + _id("ew")
            + [
                (
                    "Subject",
                    "=?utf-8?B?SGVsbG8gV29y?= =?utf-8?Q?caf=C3=A9_=ZZ?= =?unknown-8bit?Q?=E4?= =?utf-8?B?!!!?=",
                )
            ],
            "body",
        ),
        "created",
    ),
    (
        "charset_lie",
        _msg(ANN + _id("lie") + [("Subject", "lie")], "Caf\xe9 cr\xe8me".encode("latin-1")),
        "created",
    ),
    (
        "charset_unknown",
        _msg(
            ANN + _id("unk") + [("Subject", "unknown")],
            "Caf\xe9".encode("latin-1"),
            "text/plain; charset=x-none",
        ),
        "created",
    ),
    (
        "nested_multiparts",
        _msg(
            ANN + _id("nest") + [("Subject", "nested")],
            "--o\r\nContent-Type: multipart/related; boundary=r\r\n\r\n--r\r\n"
            "Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\n"
            "Deep body text\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>Deep <b>body</b></p>\r\n--a--\r\n"
            "--r\r\nContent-Type: image/png\r\nContent-ID: <i1>\r\n\r\nxx\r\n--r--\r\n"
            "--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\nSubject: inner\r\n\r\ninner\r\n--o--\r\n",
            "multipart/mixed; boundary=o",
        ),
        "created",
    ),
    (
        "climbing_attachment_names",
        _msg(
            ANN + _id("trav") + [("Subject", "files")],
            "--t\r\nContent-Type: text/plain\r\n\r\nsee files\r\n"
            '--t\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="../../../etc/passwd"\r\n\r\nroot\r\n'
            "--t\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename*=utf-8''..%2F..%2Fwin%5Cboot.ini\r\n\r\nx\r\n"
            '--t\r\nContent-Type: application/octet-stream; name="C:\\\\Windows\\\\evil.exe"\r\n\r\ny\r\n'
            '--t\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=".."\r\n\r\nz\r\n--t--\r\n',
            "multipart/mixed; boundary=t",
        ),
        "created",
    ),
]


@pytest.mark.parametrize("name, raw, expected", SHAPES, ids=[s[0] for s in SHAPES])
def test_each_real_world_shape_has_its_outcome_on_both_stores(store, name, raw, expected):
    got = inbox.receive_raw(store, raw)
    assert got.outcome == expected, (name, got.reason)
    assert "failed" not in (got.reason or ""), got.reason  # never the "handling failed" fallback
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(TicketRow)) == (expected == "created")
        assert len(mail_log.listing(s)) == (expected == "refused")
    if name == "climbing_attachment_names":
        names = [a["filename"] for a in got.ticket.extra["attachments"]]
        assert names == ["passwd", "boot.ini", "evil.exe", "attachment-4.txt"]
    assert inbox.receive_raw(store, raw).outcome in ("duplicate", "refused")  # a second poll: nothing new


# ---------------------------------------------------------------- loops with our received notice
@pytest.fixture
def app(tmp_path):
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "admin-k:admin",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_MAIL_DIR": str(tmp_path / "out"),
            "TRIAGE_MAIL_FROM": "desk@desk.example",
        }
    )


def _sent(tmp_path) -> list[email.message.EmailMessage]:
    paths = sorted((tmp_path / "out").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]


def _answer(notice, subject_prefix: str, sender: str, body: str, name: str) -> bytes:
    """What an auto-responder without RFC 3834 headers sends back to our notice."""
    return _msg(
        [
            ("From", sender),
            ("To", notice["From"]),
            ("Subject", f"{subject_prefix} {notice['Subject']}"),
            ("In-Reply-To", notice["Message-ID"]),
            ("References", notice["Message-ID"]),
        ]
        + _id(name),
        body,
    )


@pytest.mark.parametrize(
    "prefix, sender",
    [
        ("Automatische Antwort:", "Ann <ann@acme.example>"),  # the requester's own out-of-office
        ("Read:", "Ann <ann@acme.example>"),  # Outlook's plain-text read receipt (round 7)
        ("=?utf-8?b?6Ieq5Yqo5Zue5aSN77ya?=", "Ann <ann@acme.example>"),  # 自动回复： (round 7)
        (
            "Undeliverable:",
            "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@acme.example>",
        ),
    ],
)
def test_an_automatic_answer_to_our_notice_is_refused_and_sends_nothing(app, tmp_path, prefix, sender):
    with app.app_context():
        store, mailer = get_store(), get_mailer()
        opened = inbox.receive_raw(
            store, _msg(ANN + _id("first") + [("Subject", "Printer jammed")], "Jammed.")
        )
        assert opened.outcome == "created"
        deliver_once(store, mailer)
        (notice,) = _sent(tmp_path)
        assert notice["To"] == "ann@acme.example"
        # before: threaded onto the ticket as the customer's reply (Ann's out-of-office), or a
        # new ticket whose notice went to Exchange's system mailbox (the bounce)
        back = inbox.receive_raw(store, _answer(notice, prefix, sender, "I am away.", "auto"))
        assert back.outcome == "refused" and back.reason.startswith("auto-reply"), back.reason
        deliver_once(store, mailer)
        assert len(_sent(tmp_path)) == 1  # nothing went out in answer
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(TicketRow)) == 1
            assert s.scalar(select(func.count()).select_from(Comment)) == 0


def test_an_ill_behaved_auto_responder_does_not_ping_pong_with_our_notices(app, tmp_path):
    with app.app_context():
        store, mailer = get_store(), get_mailer()
        inbox.receive_raw(store, _msg(ANN + _id("start") + [("Subject", "Printer jammed")], "Jammed."))
        for turn in range(30):
            deliver_once(store, mailer)
            notice = _sent(tmp_path)[-1]
            answer = _msg(
                [("From", "Acme Support <support@acme.example>"), ("To", notice["From"])]
                + [("Subject", f"Thank you for contacting Acme support (case {turn})")]
                + _id(f"ack{turn}"),
                "We have received your message and will answer shortly.",
            )
            inbox.receive_raw(store, answer)
        deliver_once(store, mailer)
        assert len(_sent(tmp_path)) <= 11  # the first notice and at most 10 to one sender an hour


# ---------------------------------------------------------------- the HTTP inbound path
CPYTHON_CORPUS = sorted(
    (Path(email.__file__).parent.parent / "test" / "test_email" / "data").glob("msg_*.txt")
)


def test_every_shape_and_cpythons_corpus_through_post_v1_tickets_as_rfc822(tmp_path):
    """``POST /v1/tickets`` with ``Content-Type: message/rfc822``: never a 5xx, each message one
    outcome, a resend is a duplicate or the same refusal (CPython's corpus is read from the
    interpreter's prefix when it ships it, never copied)."""
    app = create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "intake-k:intake",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_MAIL_DIR": str(tmp_path / "out"),
            "TRIAGE_ATTACHMENTS_DIR": str(tmp_path / "files"),
        }
    )
    client = app.test_client()
    raws = [(name, raw, want) for name, raw, want in SHAPES] + [
        (p.name, p.read_bytes(), None) for p in CPYTHON_CORPUS
    ]
    headers = {"Authorization": "Bearer intake-k", "Content-Type": "message/rfc822"}
    for name, raw, want in raws:
        first = client.post("/v1/tickets", data=raw, headers=headers)
        assert first.status_code in (200, 201), (name, first.status_code, first.text[:300])
        assert first.json["outcome"] in inbox.OUTCOMES and "failed" not in (first.json["reason"] or ""), name
        if want is not None:
            assert first.json["outcome"] == want, (name, first.json["reason"])
        again = client.post("/v1/tickets", data=raw, headers=headers)
        assert again.status_code == 200 and again.json["outcome"] in ("duplicate", "refused"), name
