"""S/MIME opaque-signed mail (smime.p7m): the signed text is the ticket's body.

Signatures are made here by ``cryptography`` (a self-signed key made for the test); the BER
shape Outlook writes (indefinite lengths, the content in chunks) is built by hand around the
same content. Before round 8 such a mail opened a ticket with an empty body.
"""

from __future__ import annotations

import base64
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.mail import parse_message
from triage.mail.smime import signed_content
from triage.store import inbox

pkcs7 = pytest.importorskip("cryptography.hazmat.primitives.serialization.pkcs7")

ENTITY = (
    b'Content-Type: multipart/mixed; boundary="in"\r\n\r\n--in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
    b"Die VPN bricht st\xc3\xbcndlich ab.\r\n--in\r\nContent-Type: text/plain\r\n"
    b'Content-Disposition: attachment; filename="vpn.log"\r\n\r\nconnect failed\r\n--in--\r\n'
)


def _signed_der(entity: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ann@acme.example")])
    start = datetime.datetime(2026, 1, 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    builder = pkcs7.PKCS7SignatureBuilder().set_data(entity).add_signer(cert, key, hashes.SHA256())
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def _ber(entity: bytes) -> bytes:
    """signed-data as Outlook writes it: indefinite lengths, the content in 16-byte chunks."""

    def indefinite(tag: int, *children: bytes) -> bytes:
        return bytes([tag, 0x80]) + b"".join(children) + b"\x00\x00"

    chunks = [bytes([0x04, len(entity[i : i + 16])]) + entity[i : i + 16] for i in range(0, len(entity), 16)]
    encap = indefinite(
        0x30, bytes.fromhex("06092a864886f70d010701"), indefinite(0xA0, indefinite(0x24, *chunks))
    )
    signed = indefinite(0x30, b"\x02\x01\x01", b"\x31\x00", encap, b"\x31\x00")
    return indefinite(0x30, bytes.fromhex("06092a864886f70d010702"), indefinite(0xA0, signed))


def _mail(blob: bytes, smime_type: str = "signed-data") -> bytes:
    return (
        "From: Ann <ann@acme.example>\r\nTo: desk@desk.example\r\nSubject: VPN\r\nMessage-ID: <p7m@acme.example>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type={smime_type}; name="smime.p7m"\r\n'
        'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="smime.p7m"\r\n\r\n'
        + base64.encodebytes(blob).decode()
    ).encode()


@pytest.mark.parametrize("shape", ["der", "ber"])
def test_an_opaque_signed_mail_reads_as_its_signed_text(shape):
    blob = _signed_der(ENTITY) if shape == "der" else _ber(ENTITY)
    assert signed_content(blob) == ENTITY
    m = parse_message(_mail(blob))
    assert m["body"] == "Die VPN bricht stündlich ab."
    assert [a["filename"] for a in m["attachments"]] == ["smime.p7m", "vpn.log"]


@pytest.mark.parametrize(
    "blob, smime_type",
    [
        (b"\x30\x80" * 40, "signed-data"),  # deep indefinite nesting, no end
        (b"\x30\x84\xff\xff\xff\xff", "signed-data"),  # a length past the end
        (b"not der at all", "signed-data"),
        (_ber(b"x")[:-7], "signed-data"),  # truncated
        (b"\x30\x03\x02\x01\x00", "enveloped-data"),  # encrypted: not ours to read
    ],
)
def test_what_is_not_a_readable_signature_stays_an_attachment(blob, smime_type):
    m = parse_message(_mail(blob, smime_type))
    assert m["body"] == "" and not m["unreadable"]
    assert [a["filename"] for a in m["attachments"]] == ["smime.p7m"]


def test_an_opaque_signed_mail_opens_a_ticket_with_its_text(store):
    raw = _mail(_signed_der(ENTITY))
    with store.session() as s:
        got = inbox.receive(s, {**parse_message(raw), "raw": raw})
        assert got.outcome == "created" and got.ticket.body == "Die VPN bricht stündlich ab."


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_signature_or_none(tail):
    for blob in (tail, b"\x30\x80" + tail, _ber(b"x")[:20] + tail):
        result = signed_content(blob)
        assert result is None or isinstance(result, bytes)
