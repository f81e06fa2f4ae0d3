"""Text normalisation shared by training and serving.

Real exports carry mis-decoded UTF-8 ("mojibake"), quoted e-mail history and
signatures. A model trained on one form and served another loses accuracy, so
both paths call :func:`normalise` and nothing else.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy
from ftfy import badness, chardata

# Lines that start the quoted history of a reply: everything from here on is
# an older message the model must not read as this ticket's problem.
_REPLY_HEADERS = [
    # Outlook's and others' separators, English, German, French, Spanish, Italian, Dutch
    re.compile(
        r"^\s*-{2,}\s*(original message|forwarded message|urspr[üu]ngliche nachricht|message d'origine|"
        r"mensaje original|messaggio originale|oorspronkelijk bericht|weitergeleitete nachricht)\s*-{2,}",
        re.I,
    ),
    re.compile(r"^\s*on\s.{1,200}\swrote:\s*$", re.I),
    re.compile(r"^\s*am\s.{1,200}\sschrieb:\s*$", re.I),
    re.compile(r"^\s*le\s.{1,200}\sa écrit\s*:\s*$", re.I),
    # Spanish, Italian, Dutch, Portuguese, Swedish/Danish/Norwegian clients' "On ... wrote:"
    re.compile(
        r"^\s*(el\s.{1,200}\sescribió|il\s.{1,200}\sha scritto|op\s.{1,200}\sschreef.{0,200}|"
        r"em\s.{1,200}\sescreveu|(den|d\.)\s.{1,200}\sskrev.{0,200})\s*:\s*$",
        re.I,
    ),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above "From:"
]
# Outlook's header block above the quoted message, in the client's language: "From:" then
# two of "Sent:", "To:", "Subject:", ... (German Von/Gesendet/An/Betreff, French
# De/Envoyé/À/Objet, Spanish De/Enviado/Para/Asunto, Italian Da/Inviato/A/Oggetto,
# Dutch Van/Verzonden/Aan/Onderwerp, Swedish Från/Skickat/Till/Ämne)
_OUTLOOK_BLOCK = re.compile(r"^\s*(from|von|de|da|van|från|fra|od)\s?:\s.+", re.I)
_OUTLOOK_FOLLOW = re.compile(
    r"^\s*(sent|date|to|subject|cc|gesendet|datum|an|betreff|envoyé|date|à|objet|enviado|fecha|para|"
    r"asunto|inviato|data|a|oggetto|verzonden|aan|onderwerp|skickat|till|ämne|sendt|til|emne)\s?:\s",
    re.I,
)

# Lines that open a signature block.
_SIGNATURE_OPENERS = [
    re.compile(r"^--\s*$"),
    re.compile(r"^\s*sent from my \w+", re.I),
    re.compile(r"^\s*get outlook for \w+", re.I),
    re.compile(r"^\s*(best|kind|warm)?\s*regards,?\s*$", re.I),
    re.compile(r"^\s*(many\s+)?thanks( a lot| in advance)?,?\s*$", re.I),
    re.compile(r"^\s*(cheers|sincerely|br|thx|mit freundlichen grüßen),?\s*$", re.I),
]
# A signature is short: if more than this many lines follow an opener, the
# "opener" was probably part of the message and we keep everything.
_MAX_SIGNATURE_LINES = 6

_WS = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANKS = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# Printable ASCII, tabs and newlines, without "&": each of ftfy's fixes needs something else
# (an HTML entity, a non-ASCII character, "\r", an escape or control character), so such a
# text is its own repair. Most tickets are; ftfy's scan of them was ~0.2 ms per ticket, on
# every classification and intake (tests/test_text.py holds the shortcut to ftfy's answers).
_NOTHING_TO_REPAIR = re.compile(r"[\t\n\x20-\x25\x27-\x7e]*")


def _ftfy_rewrites() -> re.Pattern[str]:
    """One character class of everything a fix of ftfy's rewrites, apart from its mojibake
    detector: HTML's "&", C1 controls, Latin ligatures, full-width forms, curly quotes, line
    breaks other than "\\n", surrogates, the terminal escape and the control characters it drops.
    Built from ftfy's own tables, so a release that widens them widens this too."""
    codes = set(chardata.LIGATURES) | set(chardata.WIDTH_MAP) | set(chardata.CONTROL_CHARS)
    codes |= set(range(0x80, 0xA0)) | set(range(0xD800, 0xE000)) | set(range(0x2018, 0x2020))
    codes |= {ord(c) for c in "&\r\x1b\u02bc\u2028\u2029"}
    ranges, ordered = [], sorted(codes)
    start = prev = ordered[0]
    for code in [*ordered[1:], -1]:
        if code != prev + 1:
            ranges.append(re.escape(chr(start)) + (f"-{re.escape(chr(prev))}" if prev > start else ""))
            start = code
        prev = code
    return re.compile("[" + "".join(ranges) + "]")


_FTFY_REWRITES = _ftfy_rewrites()


def _is_its_own_repair(text: str) -> bool:
    """Whether ftfy would hand ``text`` back unchanged: no character one of its fixes rewrites,
    already NFC, and nothing its mojibake detector flags (the detector is the one step that
    reads sequences, and ftfy changes no encoding where it flags nothing). Non-ASCII tickets
    are most of a non-English desk's: ftfy's full pass cost them ~0.12 ms, this ~0.04
    (tests/test_text.py holds this shortcut to ftfy's answers)."""
    return (
        _FTFY_REWRITES.search(text) is None
        and unicodedata.is_normalized("NFC", text)
        and not badness.is_bad(text)
    )


def repair_encoding(text: str) -> str:
    """Undo mojibake such as ``CafÃ©`` → ``Café`` and drop control characters."""
    if _NOTHING_TO_REPAIR.fullmatch(text):
        return text
    if _is_its_own_repair(text):
        return _CONTROL.sub(" ", text)  # "\x0c" is ours to drop, not ftfy's
    fixed = ftfy.fix_text(text, normalization="NFC")
    return _CONTROL.sub(" ", fixed)


def strip_quoted(text: str) -> str:
    """Cut the quoted history of an e-mail reply (``> ``, "On … wrote:", Outlook headers)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if any(p.match(line) for p in _REPLY_HEADERS) or _is_outlook_header(lines, i):
            lines = lines[:i]
            break
    kept = [ln for ln in lines if not ln.lstrip().startswith(">")]
    return "\n".join(kept)


def _is_outlook_header(lines: list[str], i: int) -> bool:
    if not _OUTLOOK_BLOCK.match(lines[i]) or i == 0:
        return False
    following = lines[i + 1 : i + 4]
    return sum(bool(_OUTLOOK_FOLLOW.match(ln)) for ln in following) >= 2


def strip_signature(text: str) -> str:
    """Cut a trailing signature block: an opener followed by a few short lines."""
    lines = text.rstrip().split("\n")
    start = max(0, len(lines) - _MAX_SIGNATURE_LINES - 1)
    for i in range(start, len(lines)):
        if any(p.match(lines[i]) for p in _SIGNATURE_OPENERS):
            tail = lines[i + 1 :]
            if all(len(ln) <= 60 for ln in tail):
                return "\n".join(lines[:i])
    return "\n".join(lines)


def normalise_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(_WS.sub(" ", ln).strip() for ln in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


_PGP_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
_PGP_SIGNATURE = re.compile(
    r"^-----BEGIN PGP SIGNATURE-----$.*?(^-----END PGP SIGNATURE-----$|\Z)", re.M | re.S
)


def strip_pgp_armor(text: str) -> str:
    """The message inside an OpenPGP cleartext signature (RFC 4880 §7): without the armor
    lines, the "Hash:" header and the signature block, dash-escaped lines ("- --") restored.
    Signed mail from Thunderbird/Enigmail and mailing lists reads as its text, not as base64."""
    if _PGP_SIGNED not in text:
        return text
    head, _, signed = text.partition(_PGP_SIGNED)
    lines = signed.split("\n")[1:]
    first = 0  # past the armor headers ("Hash: SHA256") up to a blank line (an index: no copies)
    while first < len(lines) and lines[first].strip():
        first += 1
    lines = lines[first:]
    signed = "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in lines)
    return head + _PGP_SIGNATURE.sub("", signed)


def normalise(text: str | None) -> str:
    """The one normalisation: encoding repair, quotes, signature, whitespace."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", repair_encoding(str(text)))
    text = normalise_whitespace(strip_pgp_armor(text))
    text = strip_quoted(text)
    text = strip_signature(text)
    return normalise_whitespace(text)


# ------------------------------------------------------------------ forwards
# A forward's subject prefix in the languages mail clients write it: English Fw/Fwd, German WG,
# French TR, Spanish RV, Portuguese ENC, Dutch Doorst, Swedish VB, Finnish VL; after any "Re:"/"AW:"
_FORWARD_SUBJECT = re.compile(r"^\s*((re|aw|sv|antw)\s*:\s*)*(fw|fwd|wg|tr|rv|enc|doorst|vb|vl)\s*:", re.I)
_FWD_SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(original message|forwarded message|urspr[üu]ngliche nachricht|message d'origine|"
    r"weitergeleitete nachricht|mensaje original|messaggio originale)\s*-{2,}|_{10,}|"
    # Apple Mail's, English and German
    r"begin forwarded message\s*:|anfang der weitergeleiteten nachricht\s*:)\s*$",
    re.I,
)
_FWD_FROM = re.compile(r"^\s*(from|von|de|da|van|från)\s*:", re.I)
_FWD_HEADER = re.compile(
    r"^\s*(from|sent|date|to|cc|subject|von|gesendet|datum|an|betreff|de|envoyé|à|objet|enviado|para|"
    r"asunto|inviato|oggetto)\s*:",
    re.I,
)


def is_forward_subject(subject: str | None) -> bool:
    """Whether a subject is a forward's ("Fwd:", "WG:", "TR:", "Re: Fw:", ...)."""
    return bool(subject) and bool(_FORWARD_SUBJECT.match(subject or ""))


def normalise_forward(body: str | None) -> str:
    """A forward's normalised body: the note *and* the forwarded problem.

    :func:`normalise` cuts everything below "-----Original Message-----", which for a reply
    is history but for a forward is the problem being handed over: without this, a ticket
    forwarded to the desk was classified by its "FYI, see below" alone.
    """
    lines = (body or "").replace("\r\n", "\n").split("\n")
    start = _forward_start(lines)
    if start is None:
        return normalise(body)
    first = start + 1  # past the forwarded message's own From:/Sent:/To:/Subject: block
    while first < len(lines) and (not lines[first].strip() or _FWD_HEADER.match(lines[first])):
        first += 1
    rest = lines[first:]
    note, forwarded = normalise("\n".join(lines[:start])), normalise("\n".join(rest))
    return "\n".join(p for p in (note, forwarded) if p)


def _forward_start(lines: list[str]) -> int | None:
    """Index of the separator or "From:" line that opens the forwarded message."""
    for i, line in enumerate(lines):
        if _FWD_SEPARATOR.match(line):
            return i
        if _FWD_FROM.match(line) and sum(bool(_FWD_HEADER.match(x)) for x in lines[i + 1 : i + 4]) >= 2:
            return i
    return None


def model_text(subject: str | None, body: str | None) -> str:
    """The string the classifiers read: normalised subject and body on one line, lower-cased.

    Lower-casing matters because the shared export is lower-case with no digits;
    live tickets are not, and the model must treat them alike. A forward's body keeps the
    forwarded message (:func:`normalise_forward`).
    """
    body_text = normalise_forward(body) if is_forward_subject(subject) else normalise(body)
    parts = [normalise(subject), body_text]
    return " ".join(p for p in parts if p).replace("\n", " ").lower()
