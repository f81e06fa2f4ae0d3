"""S/MIME opaque-signed mail (``application/pkcs7-mime; smime-type=signed-data``, smime.p7m).

A clear-signed message (multipart/signed) carries its text beside the signature and reads like
any other. An opaque-signed one carries it *inside* the signature's PKCS#7 structure, so a desk
that does not look inside opened a ticket with an empty body. This module takes the signed MIME
entity out; it does not check the signature (the desk trusts mail no more for being signed).
Encrypted mail (enveloped-data) cannot be read without the desk's key and stays as it came.

The structure (RFC 5652) is read with a small BER reader: definite and indefinite lengths, the
content as one octet string or as constructed chunks (Outlook writes both), every length checked
against the bytes that remain and the depth bounded, so crafted input costs time linear in its size.

Public API::

    signed_content(der: bytes) -> bytes | None
"""

from __future__ import annotations

_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
_MAX_DEPTH = 16


class _Malformed(ValueError):
    pass


def signed_content(der: bytes) -> bytes | None:
    """The MIME entity inside a PKCS#7 signed-data blob, or None when it holds none."""
    try:
        tag, body, _ = _tlv(der, 0, len(der), 0)
        if tag != 0x30:
            return None
        oid, explicit = _children(der, body, 0)[:2]
        if der[oid[1][0] : oid[1][1]] != _SIGNED_DATA or explicit[0] != 0xA0:
            return None
        (signed,) = _children(der, explicit[1], 1)[:1]
        encap = _children(der, signed[1], 2)[2]  # version, digest algorithms, encapsulated content
        parts = _children(der, encap[1], 3)
        if len(parts) < 2 or parts[1][0] != 0xA0:
            return None  # detached: the content is not in here
        (octets,) = _children(der, parts[1][1], 4)[:1]
        return _octets(der, octets, 5)
    except (_Malformed, ValueError, IndexError):
        return None


_Span = tuple[int, int]
_Node = tuple[int, _Span]


def _tlv(data: bytes, pos: int, end: int, depth: int) -> tuple[int, _Span, int]:
    """``(tag, (content start, content end), next position)`` of the element at ``pos``."""
    if depth > _MAX_DEPTH or pos + 2 > end:
        raise _Malformed("too deep or too short")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise _Malformed("multi-byte tags are not used here")
    pos += 2
    if first < 0x80:
        length = first
    elif first == 0x80:  # indefinite: constructed children up to an end-of-contents 00 00
        if not tag & 0x20:
            raise _Malformed("indefinite length on a primitive")
        start = pos
        while True:
            if pos + 2 > end:
                raise _Malformed("no end-of-contents")
            if data[pos] == 0 and data[pos + 1] == 0:
                return tag, (start, pos), pos + 2
            pos = _tlv(data, pos, end, depth + 1)[2]
    else:
        size = first & 0x7F
        if size > 4 or pos + size > end:
            raise _Malformed("length of length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > end:
        raise _Malformed("length past the end")
    return tag, (pos, pos + length), pos + length


def _children(data: bytes, span: _Span, depth: int) -> list[_Node]:
    out, pos = [], span[0]
    while pos < span[1]:
        tag, body, pos = _tlv(data, pos, span[1], depth + 1)
        out.append((tag, body))
    return out


def _octets(data: bytes, node: _Node, depth: int) -> bytes:
    """An OCTET STRING's bytes, primitive (0x04) or constructed of chunks (0x24)."""
    tag, (start, end) = node
    if tag == 0x04:
        return data[start:end]
    if tag == 0x24 and depth <= _MAX_DEPTH:
        return b"".join(_octets(data, child, depth + 1) for child in _children(data, (start, end), depth))
    raise _Malformed(f"not an octet string: tag {tag:#x}")
