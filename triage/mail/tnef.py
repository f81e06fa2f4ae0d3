"""Outlook's ``winmail.dat`` (TNEF, ``application/ms-tnef``): the body and files inside it.

Outlook and Exchange send "rich text" mail as a TNEF attachment: often the message's only
body, in compressed RTF, with the real attachments packed inside it too. A desk that kept
``winmail.dat`` as it came opened a ticket with an empty body, and agents could open none of
its files. This module reads the three things a ticket needs: the body (plain text, HTML or
RTF, as the sender's Outlook stored it) and the attached files.

Written from the format's specification ([MS-OXTNEF], [MS-OXRTFCP]) rather than with a TNEF
library: every count and length in the file is checked against the bytes that remain, so a
crafted file costs time linear in its size (a library read a 30-byte file claiming four
billion properties for hours). Compressed RTF is unpacked by ``compressed_rtf`` (its output is
bounded by its input) and RTF is read as text by :func:`rtf_text` here.

Public API::

    read_tnef(data: bytes) -> Tnef | None     None: not TNEF, or nothing readable
    rtf_text(rtf: bytes) -> str
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

SIGNATURE = 0x223E9F78
MAX_BYTES = 50_000_000  # past any mail size limit: larger is not read

# attribute ids (the low 16 bits of [MS-OXTNEF]'s attribute id)
_ATT_BODY = 0x800C
_ATT_MSG_PROPS = 0x9003
_ATT_OEM_CODEPAGE = 0x9007
_ATT_REND_DATA = 0x9002  # opens an attachment
_ATT_ATTACH_TITLE = 0x8010
_ATT_ATTACH_DATA = 0x800F
_ATT_ATTACHMENT = 0x9005  # an attachment's MAPI properties
_LEVEL_ATTACHMENT = 0x02

# MAPI property ids
_PR_BODY = 0x1000
_PR_RTF_COMPRESSED = 0x1009
_PR_BODY_HTML = 0x1013
_PR_INTERNET_CPID = 0x3FDE
_PR_ATTACH_DATA = 0x3701
_PR_ATTACH_LONG_FILENAME = 0x3707

# MAPI property types: fixed sizes (each value padded to 4 bytes), and those stored as
# counted, length-prefixed values
_FIXED = {0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8, 0x000A: 4, 0x000B: 4}
_FIXED |= {0x0014: 8, 0x0040: 8, 0x0048: 16, 0x0001: 0}
_COUNTED = {0x001E, 0x001F, 0x0102, 0x000D, 0x0000}
_MULTI = 0x1000
_STRING8, _UNICODE = 0x001E, 0x001F


@dataclass
class TnefFile:
    filename: str
    data: bytes


@dataclass
class Tnef:
    body: str | None = None  # plain text
    html: str | None = None
    rtf: bytes | None = None  # compressed RTF, unpacked by :func:`body_text`
    files: list[TnefFile] = field(default_factory=list)
    codepage: str = "cp1252"

    def body_text(self) -> tuple[str, str]:
        """``(kind, text)``: "text", "html" (the HTML source) or "rtf" (read as text); "" when none."""
        if self.body and self.body.strip():
            return "text", self.body
        if self.html and self.html.strip():
            return "html", self.html
        if self.rtf:
            return "rtf", rtf_text(_unpack_rtf(self.rtf))
        return "text", ""


class _Short(ValueError):
    """The file ends inside a structure: what was read so far is kept."""


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Short(f"{n} bytes wanted at {self.pos}, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def left(self) -> int:
        return len(self.data) - self.pos


def read_tnef(data: bytes) -> Tnef | None:
    """The body and files of a TNEF blob, or None when it is not one (or holds nothing)."""
    if len(data) < 6 or len(data) > MAX_BYTES or struct.unpack("<I", data[:4])[0] != SIGNATURE:
        return None
    out, reader = Tnef(), _Reader(data, 6)
    in_attachment = False  # attachment attributes follow the one that opens each attachment
    try:
        while reader.left() >= 11:
            level, attr, length = reader.u8(), reader.u32() & 0xFFFF, reader.u32()
            value = reader.take(length)
            reader.take(2)  # checksum: a wrong one still reads (mail gateways rewrite bytes)
            if attr == _ATT_REND_DATA:
                in_attachment = True
                out.files.append(TnefFile("", b""))
            if level == _LEVEL_ATTACHMENT and in_attachment:
                _attachment_attr(out.files[-1], attr, value, out.codepage)
            elif attr == _ATT_OEM_CODEPAGE and len(value) >= 4:
                out.codepage = _codec(struct.unpack("<I", value[:4])[0], out.codepage)
            elif attr == _ATT_BODY:
                out.body = _text(value, out.codepage)
            elif attr == _ATT_MSG_PROPS:
                _message_props(out, value)
    except _Short:
        pass  # a truncated file: keep what was read
    out.files = [f for f in out.files if f.data]
    for i, f in enumerate(out.files, start=1):
        f.filename = f.filename or f"attachment-{i}.bin"
    return out if (out.body or out.html or out.rtf or out.files) else None


def _attachment_attr(target: TnefFile, attr: int, value: bytes, codepage: str) -> None:
    if attr == _ATT_ATTACH_TITLE and not target.filename:
        target.filename = _text(value, codepage)
    elif attr == _ATT_ATTACH_DATA:
        target.data = value
    elif attr == _ATT_ATTACHMENT:
        for prop, kind, values in _props(value):
            if prop == _PR_ATTACH_LONG_FILENAME and values:
                target.filename = _prop_text(kind, values[0], codepage) or target.filename
            elif prop == _PR_ATTACH_DATA and values and not target.data and kind == 0x0102:
                target.data = values[0]


def _message_props(out: Tnef, value: bytes) -> None:
    props = list(_props(value))
    for prop, kind, values in props:
        if prop == _PR_INTERNET_CPID and values and kind == 0x0003:
            out.codepage = _codec(struct.unpack("<I", values[0][:4])[0], out.codepage)
    for prop, kind, values in props:
        if not values:
            continue
        if prop == _PR_BODY:
            out.body = _prop_text(kind, values[0], out.codepage)
        elif prop == _PR_BODY_HTML:
            out.html = _prop_text(kind if kind != 0x0102 else _STRING8, values[0], out.codepage)
        elif prop == _PR_RTF_COMPRESSED and kind == 0x0102:
            out.rtf = values[0]


def _props(block: bytes):
    """``(property id, type, [raw values])`` of a MAPI property block, until it ends or breaks."""
    reader = _Reader(block)
    try:
        count = reader.u32()
        for _ in range(count):
            if reader.left() < 4:
                return  # a count larger than the bytes: stop, not loop
            kind, prop = reader.u16(), reader.u16()
            if prop >= 0x8000:  # a named property: GUID, then an id or a name
                reader.take(16)
                if reader.u32() == 0:
                    reader.take(4)
                else:
                    reader.take(_padded(reader.u32()))
            base = kind & ~_MULTI
            if base in _FIXED:
                n = reader.u32() if kind & _MULTI else 1
                if n * max(_FIXED[base], 1) > reader.left():
                    return
                values = [reader.take(_padded(_FIXED[base])) for _ in range(n)]
            elif base in _COUNTED:
                n = reader.u32()
                if n * 4 > reader.left():
                    return
                values = []
                for _ in range(n):
                    size = reader.u32()
                    values.append(reader.take(size))
                    reader.take(_padded(size) - size)
            else:
                return  # a type this reader does not know: its size is unknown, stop here
            yield prop, base, values
    except _Short:
        return


def _padded(size: int) -> int:
    return (size + 3) & ~3


def _prop_text(kind: int, raw: bytes, codepage: str) -> str:
    if kind == _UNICODE:
        return raw.decode("utf-16-le", errors="replace").rstrip("\x00")
    return _text(raw, codepage)


def _text(raw: bytes, codepage: str) -> str:
    return raw.decode(codepage, errors="replace").rstrip("\x00")


def _codec(cpid: int, fallback: str) -> str:
    """Python's codec for a Windows code page id (65001 is UTF-8), or ``fallback``."""
    name = "utf-8" if cpid == 65001 else f"cp{cpid}"
    try:
        "".encode(name)
    except LookupError:
        return fallback
    return name


def _unpack_rtf(blob: bytes) -> bytes:
    """Compressed RTF ([MS-OXRTFCP]) unpacked; an unreadable one gives b""."""
    from compressed_rtf import decompress  # type: ignore[import-untyped]

    try:
        return bytes(decompress(blob))
    except Exception:  # noqa: BLE001 - its errors are bare Exceptions (bad CRC, short data)
        return b""


# ------------------------------------------------------------------- RTF as text
# One token at a time, linear in the input: a control word with its number, a hex escape,
# a control symbol, a brace, line ends (not text in RTF), any other character
_TOKEN = re.compile(
    rb"\\([a-z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-f]{2})|\\([^a-z])|([{}])|[\r\n]+|([^\\{}\r\n]+)", re.I
)
# destinations whose text is not the message's (fonts, colours, styles, pictures, fields' codes)
_SKIPPED = {
    b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"object", b"header", b"footer",
    b"headerl", b"headerr", b"footerl", b"footerr", b"listtable", b"listoverridetable",
    b"rsidtbl", b"generator", b"xmlnstbl", b"themedata", b"colorschememapping",
    b"latentstyles", b"datastore", b"fldinst", b"filetbl", b"revtbl", b"pgdsctbl",
}  # fmt: skip
_CHARS = {b"par": "\n", b"line": "\n", b"sect": "\n", b"page": "\n", b"row": "\n", b"tab": "\t"}
_CHARS |= {b"cell": "\t", b"emdash": "\u2014", b"endash": "\u2013", b"bullet": "\u2022"}
_CHARS |= {b"lquote": "\u2018", b"rquote": "\u2019", b"ldblquote": "\u201c", b"rdblquote": "\u201d"}
_SYMBOLS = {b"~": "\u00a0", b"_": "\u2011", b"-": "", b"{": "{", b"}": "}", b"\\": "\\"}


def rtf_text(rtf: bytes) -> str:
    """The visible text of an RTF document (also Outlook's HTML- and text-encapsulated RTF)."""
    out: list[str] = []
    pending = bytearray()  # \'hh bytes, decoded together (a double-byte code page needs pairs)
    codepage, skip_after_u = "cp1252", 1
    stack: list[tuple[bool, int]] = []
    ignoring, to_skip = False, 0

    def flush() -> None:
        if pending:
            if not ignoring:
                out.append(pending.decode(codepage, errors="replace"))
            pending.clear()

    for m in _TOKEN.finditer(rtf):
        word, arg, hexbyte, symbol, brace, text = m.groups()
        if hexbyte is not None:
            if to_skip:
                to_skip -= 1
            else:
                pending.append(int(hexbyte, 16))
            continue
        flush()
        if brace == b"{":
            stack.append((ignoring, skip_after_u))
        elif brace == b"}":
            ignoring, skip_after_u = stack.pop() if stack else (ignoring, skip_after_u)
        elif symbol is not None:
            if symbol == b"*":
                ignoring = True
            elif not ignoring and symbol in _SYMBOLS:
                out.append(_SYMBOLS[symbol])
        elif word is not None:
            word = word.lower()
            if word in _SKIPPED:
                ignoring = True
            elif word == b"ansicpg" and arg:
                codepage = _codec(int(arg), codepage)
            elif word == b"uc" and arg:
                skip_after_u = max(0, int(arg))
            elif word == b"u" and arg:
                if not ignoring:
                    out.append(chr(int(arg) % 65536) if -32768 <= int(arg) < 65536 else "\ufffd")
                to_skip = skip_after_u
            elif not ignoring and word in _CHARS:
                out.append(_CHARS[word])
        elif text is not None:
            if to_skip:
                skipped = min(to_skip, len(text))
                text, to_skip = text[skipped:], to_skip - skipped
            if not ignoring and text:
                out.append(text.decode(codepage, errors="replace"))
    flush()
    # \\u writes UTF-16 code units: pair the surrogates, and a lone one becomes U+FFFD
    text = "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.strip()
