"""Charset decoding for mail that lies about its charset, or says nothing.

Used by :mod:`triage.mail` for bodies and RFC 2047 header words. The rule is
"decode, never crash": a wrong label falls back to what the bytes can be, and
the caller gets a warning instead of an exception or mojibake-by-replacement.
"""

from __future__ import annotations

import codecs

# Labels that lie in practice, per the WHATWG Encoding Standard: "iso-8859-1"
# mail is really windows-1252 (curly quotes, euro sign at 0x80-0x9f).
_CHARSET_UPGRADE = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
}
# Declarations under which valid UTF-8 with non-ASCII bytes is almost surely UTF-8.
_WEAK_CHARSETS = {
    "",
    "ascii",
    "us-ascii",
    "iso-8859-1",
    "latin1",
    "latin-1",
    "cp1252",
    "windows-1252",
    "iso-8859-15",
    "unknown-8bit",
    "x-unknown",
    "default",
}


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str, str | None]:
    """Decode ``data`` trusting ``declared`` only as far as the bytes allow.

    Returns ``(text, charset used, warning or None)``. Order: UTF-8 first when the
    label is missing or a single-byte Western one and the bytes are valid UTF-8;
    then the declared charset (upgraded per WHATWG); then UTF-8, windows-1252, and
    finally latin-1 with replacement, which cannot fail.
    """
    label = (declared or "").strip().strip('"').lower()
    if not label.isascii() or not label.isprintable():  # 8-bit or NUL in the label itself
        label = "x-invalid-label"
    non_ascii = not data.isascii()
    tries: list[str] = []
    if non_ascii and label in _WEAK_CHARSETS:
        tries.append("utf-8")
    if label and label not in ("unknown-8bit", "default"):
        tries += [_CHARSET_UPGRADE.get(label, label), label]
    tries += ["utf-8", "cp1252"]
    for name in dict.fromkeys(tries):
        try:
            codec = codecs.lookup(name).name
            text = data.decode(codec)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
        warning = None
        if label and not _same_charset(codec, label):
            warning = f"charset {label!r} did not decode; used {codec}"
        return text, codec, warning
    return data.decode("latin-1", errors="replace"), "latin-1", f"charset {label!r}: undecodable"


def _same_charset(codec: str, label: str) -> bool:
    """True when ``codec`` is what ``label`` means (or its WHATWG upgrade)."""
    names = {label, _CHARSET_UPGRADE.get(label, label)}
    for name in names:
        try:
            if codecs.lookup(name).name == codec:
                return True
        except (LookupError, ValueError):
            pass
    return label in _WEAK_CHARSETS and codec in ("utf-8", "cp1252")


def clean_header_text(text: str) -> str:
    """Header strings may carry surrogate-escaped raw bytes (and NULs): turn them into text."""
    text = text.replace("\x00", "")
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    raw = text.encode("utf-8", errors="surrogateescape")
    return decode_bytes(raw, None)[0]
