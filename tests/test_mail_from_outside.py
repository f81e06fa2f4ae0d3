"""Mail shapes from the world outside the desk, found by hunting (round 8, harden5).

Each message is built here in the shape real senders give it (nothing copied): a customer
whose own help desk tags the subject too, newsletters and bulk mail, Outlook's winmail.dat.
Parsed by ``triage.mail`` and stored through ``triage.store.inbox`` on both stores.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from triage.mail import find_reference, parse_message
from triage.text import model_text
from triage.store import inbox, tickets

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=timezone.utc)


def _eml(
    subject: str, *, mid: str, sender: str = "ann@acme.example", headers: str = "", body: str = "Hi"
) -> bytes:
    return (
        f"From: Ann <{sender}>\r\nTo: desk@desk.example\r\nSubject: {subject}\r\n"
        f"Message-ID: {mid}\r\n{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


# ------------------------------------------------------------- foreign ticket tags
def test_another_desks_tag_before_ours_does_not_hide_ours():
    """Before: the first "[#X-n]" won, ``ticket_id_of`` refused its prefix and the reply
    opened a new ticket instead of following up TCK-12."""
    m = parse_message(_eml("Re: [#INC-88] [#TCK-12] VPN down", mid="<r1@acme.example>"))
    assert find_reference(m) == "TCK-12"
    assert find_reference(parse_message(_eml("Re: [#INC-88] VPN down", mid="<r2@acme.example>"))) is None


def test_a_reply_carrying_the_customers_own_desk_tag_threads_into_our_ticket(store):
    with store.session() as s:
        opened = inbox.receive(s, parse_message(_eml("VPN down", mid="<o1@acme.example>")), now=NOW)
        ref = inbox.reference(opened.ticket.id)
        # the customer's desk put its own tag in front when it forwarded our notice on
        reply = parse_message(_eml(f"RE: [#SR-4711] Re: [#{ref}] VPN down", mid="<o2@acme.example>"))
        got = inbox.receive(s, reply, now=NOW)
        assert (got.kind, got.ticket.id) == ("followup", opened.ticket.id)
        assert len(tickets.query(s)) == 1


# ------------------------------------------------------------- newsletters and bulk mail
_UNSUB = "List-Unsubscribe: <mailto:unsub-7f3a@news.vendor.example>, <https://news.vendor.example/u/7f3a>\r\n"
BULK = {
    # an ESP's campaign under Gmail's and Yahoo's bulk-sender rules: one-click unsubscribe
    "one_click_newsletter": _UNSUB
    + "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nList-Id: <monthly.news.vendor.example>\r\n"
    "Feedback-ID: 7f3a:campaign-118:vendor\r\n",
    # an older sender: an unsubscribe link and no Precedence header at all
    "unsubscribe_only": _UNSUB,
    # Mailman's announce-only list says where not to post
    "announce_only_list": _UNSUB
    + "List-Id: Security advisories <advisories.vendor.example>\r\nList-Post: NO\r\n",
}
NOT_BULK = {
    # the desk's own address is a Google Groups alias: every customer's mail arrives like this
    "google_groups_alias": "List-Post: <https://groups.google.com/a/desk.example/group/support/post>, "
    "<mailto:support@desk.example>\r\nList-Unsubscribe: <mailto:googlegroups-manage+1234+unsubscribe"
    "@googlegroups.com>\r\nList-Id: <support.desk.example>\r\nPrecedence: list\r\n"
    "Mailing-list: list support@desk.example; contact support+owners@desk.example\r\n",
    # a discussion list's message (Mailman 3)
    "mailman_discussion": _UNSUB
    + "List-Id: <users.lists.example>\r\nList-Post: <mailto:users@lists.example>\r\n",
    "plain_person": "",
}


@pytest.mark.parametrize("name", sorted(BULK))
def test_bulk_mail_is_machine_sent(name):
    m = parse_message(_eml("December news: 5 tips for your VPN", mid=f"<{name}@x>", headers=BULK[name]))
    assert m["auto_reply"] and "bulk mail" in m["auto_reply_reason"], m["auto_reply_reason"]
    assert "List-Unsubscribe" in m["auto_reply_reason"]


@pytest.mark.parametrize("name", sorted(NOT_BULK))
def test_mail_through_a_list_one_may_post_to_is_a_persons(name):
    m = parse_message(_eml("VPN drops every hour", mid=f"<{name}@x>", headers=NOT_BULK[name]))
    assert not m["auto_reply"], m["auto_reply_reason"]


def test_a_newsletter_opens_no_ticket_is_kept_and_an_admin_may_replay_it(store):
    raw = _eml(
        "Your December newsletter", mid="<nl1@news.vendor.example>", headers=BULK["one_click_newsletter"]
    )
    with store.session() as s:
        got = inbox.receive(s, {**parse_message(raw), "raw": raw}, now=NOW)
        assert got.outcome == "refused" and got.ticket is None and tickets.query(s) == []
        assert "bulk mail" in got.reason
    replayed = inbox.replay(store, got.refusal_id)  # the desk wanted it after all
    assert replayed.outcome == "created" and replayed.ticket.subject == "Your December newsletter"


# ------------------------------------------------------------- forwards and signed mail
PROBLEM = "The VPN is down for the whole Lyon office"
FORWARDS = {
    "gmail": "FYI, see below.\n\n---------- Forwarded message ---------\nFrom: Bob <bob@acme.example>\n"
    "Date: Mon, 7 Dec 2026 at 09:00\nSubject: VPN down\nTo: Ann <ann@acme.example>\n\n" + PROBLEM + ".\n",
    "outlook": "Please look at this.\n\n________________________________\nFrom: Bob Lee\nSent: Monday, "
    "December 7, 2026 9:00 AM\nTo: Ann\nSubject: VPN down\n\n" + PROBLEM + ".\n",
    "apple": "See below\n\nBegin forwarded message:\n\nFrom: Bob <bob@acme.example>\nSubject: VPN down\n"
    "Date: 7 December 2026 at 09:00:00 CET\nTo: Ann <ann@acme.example>\n\n" + PROBLEM + ".\n",
    "outlook_de": "Zur Info.\n\nVon: Bob Lee <bob@acme.example>\nGesendet: Montag, 7. Dezember 2026 09:00\n"
    "An: Ann\nBetreff: VPN down\n\n" + PROBLEM + ".\n",
}
SUBJECTS = {
    "gmail": "Fwd: VPN down",
    "outlook": "FW: VPN down",
    "apple": "Fwd: VPN down",
    "outlook_de": "WG: VPN down",
}


@pytest.mark.parametrize("name", sorted(FORWARDS))
def test_a_forwarded_problem_reaches_the_models_the_store_feeds(name):
    """The parser kept a forward's forwarded message in its ``model_text``, but intake feeds
    the models ``model_text(subject, body)`` from the stored ticket, which cut it as quoted
    history: a forwarded ticket was classified by "FYI, see below" alone."""
    m = parse_message(_eml(SUBJECTS[name], mid=f"<fwd-{name}@x>", body=FORWARDS[name].replace("\n", "\r\n")))
    assert m["is_forward"]
    assert m["model_text"] == model_text(m["subject"], m["body"])  # what the store's intake computes
    assert PROBLEM.lower() in m["model_text"]


def test_a_reply_still_drops_the_quoted_history():
    body = "It works again, thanks.\n\n-----Original Message-----\nFrom: Desk\nSent: today\n\n" + PROBLEM
    assert PROBLEM.lower() not in model_text("RE: VPN down", body)


def test_an_openpgp_cleartext_signed_mail_reads_as_its_message():
    body = (
        "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nThe VPN drops every hour since the update.\r\n"
        "- -----\r\nline after a dash-escaped one\r\n-----BEGIN PGP SIGNATURE-----\r\n\r\n"
        "iQEzBAEBCAAdFiEE0123456789abcdefAAoJEAbCdEf\r\n=AbCd\r\n-----END PGP SIGNATURE-----\r\n"
    )
    m = parse_message(_eml("VPN drops", mid="<pgp@x>", body=body))
    assert (
        m["model_text"]
        == "vpn drops the vpn drops every hour since the update. ----- line after a dash-escaped one"
    )
    assert model_text(m["subject"], m["body"]) == m["model_text"]


# ------------------------------------------------------------- two help desks
def test_two_help_desks_do_not_loop_on_each_others_notices(tmp_path):
    """Another desk (no RFC 3834 headers, no In-Reply-To) answers each of our notices with its
    own, its tag in front of ours: "[#SR-7] Update received: [#TCK-1] We received ...". Before,
    its tag hid ours: every answer opened a ticket and got a notice, ten an hour for ever (the
    per-requester guard only slowed it). Now the answer follows up TCK-1 and the loop ends."""
    import email
    import email.policy

    from sqlalchemy import func, select

    from service.app import create_app
    from service.mailer import deliver_once, get_mailer
    from service.store import get_store
    from triage.store.tables import TicketRow

    app = create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "admin-k:admin",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'loop.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_MAIL_DIR": str(tmp_path / "out"),
            "TRIAGE_MAIL_FROM": "desk@desk.example",
        }
    )

    def sent():
        paths = sorted((tmp_path / "out").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]

    other = "support@other-desk.example"
    with app.app_context():
        store, mailer = get_store(), get_mailer()
        first = _eml("[#SR-7] We received your request: printer", mid="<sr7@other>", sender=other)
        assert inbox.receive_raw(store, first).outcome == "created"
        for turn in range(12):
            deliver_once(store, mailer)
            notice = sent()[-1]
            answer = _eml(
                f"[#SR-7] Update received: {notice['Subject']}", mid=f"<sr7-{turn}@other>", sender=other
            )
            inbox.receive_raw(store, answer)
        deliver_once(store, mailer)
        assert len(sent()) == 1  # our one received notice
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(TicketRow)) == 1


def _with_eml(subject: str, note: str, *, mid: str) -> bytes:
    inner = (
        'From: "IT Support" <it@evil.example>\r\nSubject: Your mailbox is full\r\n'
        "Date: Mon, 7 Dec 2026 08:00:00 +0000\r\n\r\nClick here to verify your password.\r\n"
    )
    note_part = f"--f\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{note}\r\n" if note else ""
    return (
        f"From: Ann <ann@acme.example>\r\nTo: desk@desk.example\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="f"\r\n\r\n'
        + note_part
        + '--f\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="mail.eml"\r\n\r\n'
        + inner
        + "--f--\r\n"
    ).encode()


@pytest.mark.parametrize(
    "subject, note",
    [
        ("Fwd: Your mailbox is full", "Is this real?"),
        ("Suspicious mail", ""),
        ("FW: Your mailbox is full", ""),
    ],
    ids=["forward-as-attachment", "phishing-report-button", "forward-without-note"],
)
def test_a_message_forwarded_as_an_attachment_is_read_with_the_note(store, subject, note):
    """Before, only the note (or nothing) was the ticket's body and the models' text: the .eml
    holding the problem was an attachment nobody read."""
    raw = _with_eml(subject, note, mid=f"<att-{len(note)}-{len(subject)}@acme.example>")
    m = parse_message(raw)
    assert "verify your password" in m["model_text"] and "your mailbox is full" in m["model_text"]
    assert m["model_text"] == model_text(m["subject"], m["body"])  # what intake feeds the models
    assert [a["filename"] for a in m["attachments"]] == ["mail.eml"]  # kept as it came
    with store.session() as s:
        got = inbox.receive(s, {**parse_message(raw), "raw": raw}, now=NOW)
        assert got.outcome == "created" and "Click here to verify your password." in got.ticket.body
        assert got.ticket.body.startswith(note or "From: IT Support <it@evil.example>")


def test_a_mailed_attachment_name_loses_its_bidirectional_controls():
    raw = (
        b"From: ann@acme.example\r\nTo: desk@desk.example\r\nSubject: Invoice\r\nMessage-ID: <rlo@x>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe\r\n\r\nMZ\r\n--b--\r\n"
    )
    assert [a["filename"] for a in parse_message(raw)["attachments"]] == ["invoicefdp.exe"]


def test_an_invitation_with_no_note_reads_as_its_words():
    """Before: the body was the raw BEGIN:VCALENDAR lines, and the models read "begin:vevent"."""
    ics = (
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Laptop handover\r\n"
        "DESCRIPTION:Please bring the old laptop\\, charger and badge.\\nRoom 3 is bo\r\n oked.\r\n"
        "DTSTART:20261201T090000Z\r\nORGANIZER;CN=Ann Lee:mailto:ann@acme.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    raw = (
        "From: Ann <ann@acme.example>\r\nTo: desk@desk.example\r\nSubject: Invitation: Laptop handover\r\n"
        "Message-ID: <ics@x>\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n" + ics
    ).encode()
    m = parse_message(raw)
    assert m["body"] == (
        "Laptop handover\nPlease bring the old laptop, charger and badge.\nRoom 3 is booked.\n"
        "When: 20261201T090000Z\nOrganizer: Ann Lee ann@acme.example"
    )
    assert "vcalendar" not in m["model_text"] and not m["auto_reply"]
