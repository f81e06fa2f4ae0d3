"""Outlook's winmail.dat (TNEF): the body and the files inside it become the ticket's.

The TNEF files are built here from the format's specification ([MS-OXTNEF]): attributes
with their checksums, MAPI property blocks, compressed RTF made by ``compressed_rtf``. Before
round 8 a mail whose only body was winmail.dat opened a ticket with an empty body, and its
files stayed packed inside it.
"""

from __future__ import annotations

import base64
import struct

import pytest
from compressed_rtf import compress
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.mail import parse_message
from triage.mail.tnef import SIGNATURE, read_tnef, rtf_text
from triage.store import inbox, tickets

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40


def _attr(level: int, kind: int, attr: int, data: bytes) -> bytes:
    return (
        struct.pack("<BII", level, (kind << 16) | attr, len(data))
        + data
        + struct.pack("<H", sum(data) & 0xFFFF)
    )


def _pad(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def _prop(kind: int, prop: int, value: bytes) -> bytes:
    head = struct.pack("<HH", kind, prop)
    if kind in (0x001E, 0x001F, 0x0102):
        return head + struct.pack("<II", 1, len(value)) + _pad(value)
    return head + _pad(value)


def _props(*props: bytes) -> bytes:
    return struct.pack("<I", len(props)) + b"".join(props)


def tnef(*message_props: bytes, body: bytes | None = None, files: list[tuple[str, bytes]] = ()) -> bytes:
    out = struct.pack("<IH", SIGNATURE, 0x1234)
    out += _attr(1, 0x0009, 0x9006, struct.pack("<I", 0x00010000))  # TNEF version
    out += _attr(1, 0x0006, 0x9007, struct.pack("<II", 1252, 0))  # OEM code page
    if body is not None:
        out += _attr(1, 0x0002, 0x800C, body)  # attBody
    if message_props:
        out += _attr(1, 0x0006, 0x9003, _props(*message_props))
    for name, data in files:
        out += _attr(2, 0x0006, 0x9002, b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 8)  # opens an attachment
        out += _attr(2, 0x0001, 0x8010, b"ATTACH~1.PNG\x00")  # the 8.3 title
        out += _attr(2, 0x0006, 0x800F, data)
        long_name = _prop(0x001F, 0x3707, (name + "\x00").encode("utf-16-le"))
        out += _attr(2, 0x0006, 0x9005, _props(long_name))
    return out


# Outlook's HTML-encapsulated RTF, as Outlook writes a short German note
RTF = (
    rb"{\rtf1\ansi\ansicpg1252\fromhtml1 \deff0{\fonttbl{\f0\fswiss Arial;}}"
    rb"{\*\htmltag19 <html>}{\*\htmltag34 <body>}\htmlrtf {\htmlrtf0 "
    rb"Der Drucker im 3. Stock druckt nicht mehr \'96 Fehler \u8364? 42"
    rb"{\*\htmltag116 <br>}\htmlrtf \line \htmlrtf0 Gr\'fc\'dfe, J\'fcrgen \u-10179?\u-8704?"
    rb"{\*\htmltag0 </body>}}"
)
RTF_TEXT = "Der Drucker im 3. Stock druckt nicht mehr \u2013 Fehler \u20ac 42\nGrüße, Jürgen \U0001f600"


def _mail(blob: bytes, *, plain: str | None = None, mid: str = "<w1@acme.example>") -> bytes:
    parts = ""
    if plain is not None:
        parts += f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n"
    parts += (
        '--b1\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
        'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="winmail.dat"\r\n\r\n'
        + base64.encodebytes(blob).decode()
        + "--b1--\r\n"
    )
    return (
        "From: Jürgen <juergen@acme.example>\r\nTo: desk@desk.example\r\nSubject: Drucker\r\n"
        f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n' + parts
    ).encode()


def test_rtf_text_reads_outlooks_encapsulated_html_rtf():
    assert rtf_text(RTF) == RTF_TEXT


def test_a_mail_whose_only_body_is_compressed_rtf_in_winmail_dat():
    blob = tnef(_prop(0x0102, 0x1009, compress(RTF)), files=[("..\\..\\Fehlerbild März.png", PNG)])
    m = parse_message(_mail(blob))
    assert m["body"] == RTF_TEXT and not m["empty"]
    assert "der drucker im 3. stock" in m["model_text"]
    names = [(a["filename"], a["content_type"]) for a in m["attachments"]]
    assert names == [("winmail.dat", "application/ms-tnef"), ("Fehlerbild März.png", "image/png")]
    assert m["attachments"][1]["data"] == PNG  # the file itself, out of winmail.dat


@pytest.mark.parametrize(
    "blob, body",
    [
        (
            tnef(body=b"Scanner on floor 2 is broken\r\nsince Monday\x00"),
            "Scanner on floor 2 is broken\nsince Monday",
        ),
        (
            tnef(_prop(0x001F, 0x1000, "Écran noir après mise à jour".encode("utf-16-le"))),
            "Écran noir après mise à jour",
        ),
        (
            tnef(
                _prop(0x0003, 0x3FDE, struct.pack("<I", 65001)),
                _prop(0x0102, 0x1013, "<p>Écran <b>noir</b></p>".encode()),
            ),
            "Écran noir",
        ),
    ],
    ids=["attBody", "PR_BODY unicode", "PR_BODY_HTML utf-8"],
)
def test_each_place_outlook_keeps_a_body(blob, body):
    assert parse_message(_mail(blob))["body"] == body


def test_a_plain_body_beside_winmail_dat_stays_the_body():
    m = parse_message(_mail(tnef(_prop(0x0102, 0x1009, compress(RTF))), plain="See the note."))
    assert m["body"] == "See the note."


@pytest.mark.parametrize(
    "blob",
    [
        struct.pack("<IH", SIGNATURE, 0)
        + _attr(1, 6, 0x9003, struct.pack("<I", 0xFFFFFFFF)),  # 4 billion properties
        struct.pack("<IH", SIGNATURE, 0)
        + struct.pack("<BII", 1, 0x9003, 0xFFFFFFF0)
        + b"xx",  # length past the end
        tnef(_prop(0x0102, 0x1009, b"\x10\x00\x00\x00" * 4 + b"junk")),  # compressed RTF with a bad CRC
        tnef(body=b"Half a bo")[:-5],  # truncated
        struct.pack("<IH", SIGNATURE, 0)
        + _attr(1, 6, 0x9003, struct.pack("<IHH", 3, 0x0102, 0x1009) + b"\xff" * 8),
        b"\x78\x9f\x3e\x22" + b"\x00" * 64,  # signature, then nothing
        b"not tnef at all",
    ],
    ids=["huge-count", "long-length", "bad-crc", "truncated", "counted-past-end", "zeros", "garbage"],
)
def test_a_broken_winmail_dat_is_kept_and_the_mail_still_reads(blob):
    m = parse_message(_mail(blob))
    assert not m["unreadable"] and m["attachments"][0]["filename"] == "winmail.dat"
    assert m["attachments"][0]["data"] == blob  # kept as it came


def test_a_winmail_dat_mail_opens_a_ticket_with_its_text_and_files(store):
    blob = tnef(_prop(0x0102, 0x1009, compress(RTF)), files=[("Fehlerbild.png", PNG)])
    raw = _mail(blob)
    with store.session() as s:
        got = inbox.receive(s, {**parse_message(raw), "raw": raw})
        assert got.outcome == "created" and got.ticket.body == RTF_TEXT
        files = [a["filename"] for a in tickets.get(s, got.ticket.id).extra["attachments"]]
        assert files == ["winmail.dat", "Fehlerbild.png"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_tnef_bytes_are_read_or_refused_never_raise(tail):
    for blob in (struct.pack("<IH", SIGNATURE, 0) + tail, tnef(body=b"x") + tail):
        result = read_tnef(blob)
        assert result is None or isinstance(result.body_text()[1], str)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_rtf_bytes_read_as_text(tail):
    text = rtf_text(b"{\\rtf1\\ansi " + tail + b"}")
    text.encode("utf-8")  # no lone surrogate
