"""E-mail intake: a raw RFC 822 message (bytes) → one intake dict.

Mail is the messiest channel: wrong or missing charset declarations, HTML-only
bodies, forwarded threads, auto-replies that would open tickets in a loop. This
module turns any message into the same dict shape and never raises on bad
input, because a message that crashes the poller would block every message
behind it. Defects it had to work around are listed in ``warnings``.

Public API::

    parse_message(raw: bytes) -> dict
    find_reference(intake, *, lookup=None, pattern=SUBJECT_TAG) -> str | None
    tag_subject(reference, subject) -> str
    decode_bytes(data, declared_charset) -> (text, charset used, warning | None)  [triage.charsets]
    auto_reply_reason(email.message.Message) -> str | None
    bulk_reason(email.message.Message) -> str | None   (newsletters: part of auto_reply_reason)

The poller (IMAP, Maildir, mbox) is in :mod:`triage.mail.pollers`.

The intake dict (all keys always present)::

    subject        str             decoded (encoded-words, any charset)
    body           str             the full decoded body, quotes kept: store this
    body_html      str | None      the HTML alternative, if any (never rendered unescaped!)
    model_body     str             body without quoted history/signature (normalise(); a forward keeps
                                   the forwarded message: normalise_forward())
    model_text     str             triage.text.model_text(subject, model_body): what the models read
    from           {"name", "address"} (address lower-cased; "" when missing)
    to, cc         [{"name", "address"}, ...]
    message_id     str | None      "<id@host>"
    in_reply_to    str | None
    references     [str, ...]      oldest first, as in the header
    date           datetime | None aware (UTC assumed when the header has no zone)
    attachments    [{"filename", "content_type", "size", "sha256", "data": bytes}, ...]
    auto_reply     bool            True: do not open a ticket, do not answer (loop protection;
                                   also bulk mail: newsletters, announcements)
    auto_reply_reason str | None   which header or pattern said so
    is_forward     bool            subject starts with Fw:/Fwd:/WG:/TR:/RV:/ENC: (triage.text.is_forward_subject)
    channel        "email"
    raw_sha256     str             of the raw bytes: an idempotency key when Message-ID is missing
    content_hash   str             of sender, subject, body and attachment hashes (not the transport
                                   headers): with Message-ID and sender, what makes a message "the same"
    empty          bool            no subject, no body text and no attachment: nothing to open a ticket on
    unreadable     bool            the parser could not read the body (too many parts, nesting past the
                                   interpreter's limit): the headers alone were read; refused, kept for replay
    defects        [str, ...]      MIME defects the parser found (broken boundaries, bad base64, ...)
    warnings       [str, ...]      charset fallbacks and header defects worked around
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import email.utils
import hashlib
import mimetypes
import re
from datetime import datetime, timezone
from email.message import EmailMessage, Message
from typing import Any, Callable, Iterator, Mapping

from triage.charsets import clean_header_text, decode_bytes
from triage.filenames import safe_filename
from triage.htmltext import html_to_text
from triage.text import is_forward_subject, model_text, normalise, normalise_forward
from triage.ticket import PREFIX

from .smime import signed_content
from .tnef import Tnef, read_tnef
from .words import decode_words, has_words

# "[#TCK-123]" in a subject; callers with another scheme pass their own pattern
# with a group named "ref" (or a single group). Only our own prefix: a customer whose
# company runs a help desk too answers "Re: [#INC-88] [#TCK-12] VPN down", and the
# first tag in the subject is then theirs, not ours.
SUBJECT_TAG = re.compile(rf"\[#(?P<ref>{PREFIX}-\d+)\]", re.I)

_MSGID = re.compile(r"<[^<>\s]+>")
# Only the "Prefix:" forms clients generate: a person may well write a ticket titled
# "Out of office replies not working" or "Undeliverable mail to finance" (bounces
# are caught by multipart/report, Return-Path <> and the daemon senders instead).
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[- ]?(reply|response)|out of (the )?office( auto ?reply)?|"
    # Outlook's out-of-office prefix in German, French, Italian, Spanish/Portuguese, Dutch,
    # Swedish/Norwegian/Danish, Finnish, Polish, Czech
    r"abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|risposta automatica|"
    r"respuesta autom[áa]tica|resposta autom[áa]tica|automatisch antwoord|autosvar|"
    r"automaattinen vastaus|odpowied[źz] automatyczna|automatick[áa] odpov[ěe]d[ľ]?|"
    # ... in Chinese (simplified, traditional), Japanese, Korean, Russian, Turkish,
    # Hungarian, Greek (CJK clients write a full-width colon)
    r"自动回复|自動回覆|自動応答|自動返信|자동 회신|автоматический ответ|автоответ|otomatik yan[ıi]t|"
    r"automatikus v[áa]lasz|αυτόματη απάντηση|"
    # Outlook's plain-text read receipts ("Read: VPN down"), English, German, French,
    # Spanish, Dutch: a receipt answering our notice would thread as the customer's reply
    r"read|not read|gelesen|ungelesen|lu|non lu|le[íi]do|no le[íi]do|gelezen|niet gelezen|"
    # delivery failures that come without multipart/report (Exchange, Lotus, older MTAs)
    r"undeliverable|unzustellbar|non remis|non recapitabile|no se puede entregar|"
    r"returned mail|mail delivery failed|delivery failure|delivery has failed|delivery delayed|"
    r"delivery notification)\s*[:：]",
    re.I,
)
# the whole subjects MTAs give their bounces and delay warnings (Postfix, Gmail, qmail/Yahoo,
# sendmail): no person titles a ticket exactly so
_DSN_SUBJECT = re.compile(
    r"^\s*(undelivered mail returned to sender|delivery status notification \((failure|delay)\)|"
    r"failure notice|warning: could not send message for past \d+ hours?|mail system error - returned mail)\s*$",
    re.I,
)
# the daemons' mailboxes, with a domain or without ("MAILER-DAEMON (Mail Delivery System)",
# as Postfix writes it); the whole local part, so "it-postmaster@" and a display name
# "Postmaster Team" stay people
_DAEMON = re.compile(r"(^|[<\s\"])(mailer-daemon|mail-daemon|postmaster)(@|>|$|\s*\()|noreply-dmarc", re.I)
# Exchange sends its non-delivery reports from a system mailbox of this shape
_EXCHANGE_SYSTEM = re.compile(r"(^|<|\s)microsoftexchange[0-9a-f]{32}@", re.I)


# ------------------------------------------------------------------ headers
def _header(msg: Message, name: str, warnings: list[str]) -> str:
    """A header as text; encoded-words decoded one by one from the raw value (see
    :mod:`triage.mail.words`: the stdlib drops or garbles a run holding one bad word)."""
    raw = _raw_header(msg, name)
    if raw is not None and has_words(raw):
        return decode_words(raw, warnings, name).strip()
    try:
        value = msg.get(name)
        text = clean_header_text(str(value)).strip() if value is not None else ""
    except Exception as exc:  # the stdlib header parser has known crashers
        warnings.append(f"header {name}: {exc.__class__.__name__}")
        text = clean_header_text(raw or "").strip()
    return text


def _raw_header(msg: Message, name: str) -> str | None:
    """The first ``name`` header's value as sent (folded, encoded-words not decoded)."""
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _addresses(msg: Message, name: str, warnings: list[str]) -> list[dict[str, str]]:
    values = []
    raw = [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]
    try:
        headers = msg.get_all(name) or []
        for header in headers:
            for addr in getattr(header, "addresses", ()):
                values.append((addr.display_name, addr.addr_spec))
        if _garbled(headers, raw):  # the names re-read from the raw value, word by word
            values = _raw_addresses(raw, warnings, name)
    except Exception as exc:
        warnings.append(f"header {name}: {exc.__class__.__name__}")
        values = _raw_addresses(raw, warnings, name)
    out = []
    for display, spec in values:
        spec = clean_header_text(spec or "").strip().strip("<>").lower()
        if spec or display:
            out.append({"name": clean_header_text(display or "").strip(), "address": spec})
    return out


def _garbled(headers: list[Any], raw: list[str]) -> bool:
    """Whether the stdlib dropped or mis-decoded an encoded-word of an address header."""
    if not any(has_words(value) for value in raw):
        return False
    return any(getattr(h, "defects", ()) or "\ufffd" in str(h) or _escaped(str(h)) for h in headers)


def _escaped(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _raw_addresses(raw: list[str], warnings: list[str], name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs read from the raw values, names decoded by
    :func:`decode_words` (the addresses themselves are never encoded)."""
    unfolded = [value.replace("\r", "").replace("\n", "") for value in raw]
    return [
        (decode_words(display, warnings, name), spec) for display, spec in email.utils.getaddresses(unfolded)
    ]


def _message_ids(value: str) -> list[str]:
    return _MSGID.findall(value or "")


def _date(msg: Message, warnings: list[str]) -> datetime | None:
    text = _header(msg, "Date", warnings)
    if not text:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        warnings.append(f"unparseable Date: {text[:60]!r}")
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------- body parts
def _leaves(part: Message, in_alternative: bool = False) -> Iterator[tuple[Message, bool]]:
    """Leaf parts in order, each with whether it sits under a multipart/alternative.

    An attached message (message/rfc822) is one leaf: its insides are not ours.
    """
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        alternative = in_alternative or part.get_content_subtype() == "alternative"
        for sub in part.get_payload():
            yield from _leaves(sub, alternative)
    else:
        yield part, in_alternative


def _part_text(part: Message, warnings: list[str]) -> str:
    data = part.get_payload(decode=True) or b""
    text, _, warning = decode_bytes(data, part.get_content_charset())
    if warning:
        warnings.append(warning)
    return text


def _body_parts(msg: EmailMessage) -> tuple[Message | None, Message | None]:
    """The text/plain and text/html parts that make up the body, if any."""
    try:
        plain = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
    except Exception:
        plain = html = None
    if plain is None and html is None and not msg.is_multipart():
        if msg.get_content_maintype() == "text" or not msg.get_content_type():
            return msg, None
    return plain, html


def _body(msg: EmailMessage, warnings: list[str]) -> tuple[str, str | None, set[int]]:
    """``(body text, HTML source or None, ids of the parts used)``.

    Plain text wins; HTML is converted when there is no (non-empty) plain part.
    Inline text parts outside the alternative (Apple Mail: text, image, more
    text) are appended rather than silently dropped.
    """
    plain, html = _body_parts(msg)
    used = {id(p) for p in (plain, html) if p is not None}
    html_text = _part_text(html, warnings) if html is not None else None
    body = _part_text(plain, warnings) if plain is not None else ""
    if not body.strip() and html_text:
        body = html_to_text(html_text)
    elif plain is not None:
        for part, in_alternative in _leaves(msg):
            if (
                id(part) not in used
                and not in_alternative
                and part.get_content_type() == "text/plain"
                and not _is_attachment(part, used)
            ):
                body = body.rstrip("\r\n") + "\n\n" + _part_text(part, warnings)
                used.add(id(part))
    return body.replace("\r\n", "\n").replace("\x00", ""), html_text, used  # PostgreSQL refuses NUL


def _is_attachment(part: Message, body: set[int]) -> bool:
    if id(part) in body:
        return False
    if part.get_content_maintype() == "message":
        return True
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment" or part.get_filename():
        return True
    return part.get_content_type() not in ("text/plain", "text/html")


def _filename(part: Message, index: int) -> str:
    """A safe file name: no directories, no control characters, never empty."""
    try:
        name = clean_header_text(part.get_filename() or "")
    except Exception:
        name = ""
    return _safe_name(name, index, part.get_content_type())


def _safe_name(name: str, index: int, ctype: str) -> str:
    """:func:`triage.filenames.safe_filename`, or "attachment-N.ext" by the part's type."""
    ext = ".eml" if ctype == "message/rfc822" else (mimetypes.guess_extension(ctype) or ".bin")
    return safe_filename(name, f"attachment-{index}{ext}")


def _attachment(part: Message, index: int, warnings: list[str]) -> dict[str, Any]:
    try:
        data = _attachment_bytes(part)
    except Exception as exc:  # a malformed part must not lose the rest of the message
        warnings.append(f"attachment {index}: unreadable ({exc.__class__.__name__})")
        data = b""
    return {
        "filename": _filename(part, index),
        "content_type": part.get_content_type(),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data": data,
    }


def _attachment_bytes(part: Message) -> bytes:
    """Decoded bytes of a part; an attached message is re-serialised as an .eml."""
    if part.get_content_maintype() != "message":
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""
    inner = part.get_payload()
    inner = inner[0] if isinstance(inner, list) and inner else inner
    if not isinstance(inner, Message):
        return str(inner).encode("utf-8", "surrogateescape")
    try:
        return inner.as_bytes()
    except (UnicodeError, LookupError):  # 8-bit junk the generator cannot re-encode
        return inner.as_string(policy=inner.policy.clone(utf8=True)).encode("utf-8", "replace")


# ------------------------------------------------------------------ winmail.dat
_TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")


def _tnef(msg: Message, warnings: list[str]) -> Tnef | None:
    """The first TNEF part's contents (Outlook sends one at most), or None."""
    for part, _ in _leaves(msg):
        name = (part.get_filename() or "").lower() if part.get_content_maintype() == "application" else ""
        if part.get_content_type() in _TNEF_TYPES or name == "winmail.dat":
            try:
                return read_tnef(_attachment_bytes(part))
            except Exception as exc:  # noqa: BLE001 - a broken winmail.dat is kept as it came
                warnings.append(f"winmail.dat: unreadable ({exc.__class__.__name__})")
                return None
    return None


def _tnef_body(tnef: Tnef, html_text: str | None) -> tuple[str, str | None]:
    kind, text = tnef.body_text()
    if kind == "html":
        return html_to_text(text), text
    return text.replace("\r\n", "\n").replace("\x00", ""), html_text


def _tnef_files(tnef: Tnef | None, before: int) -> list[dict[str, Any]]:
    """The files packed inside winmail.dat, as attachments of their own (winmail.dat stays too)."""
    out = []
    for i, packed in enumerate(tnef.files if tnef is not None else [], start=before + 1):
        ctype = mimetypes.guess_type(packed.filename)[0] or "application/octet-stream"
        out.append(
            {
                "filename": _safe_name(packed.filename, i, ctype),
                "content_type": ctype,
                "size": len(packed.data),
                "sha256": hashlib.sha256(packed.data).hexdigest(),
                "data": packed.data,
            }
        )
    return out


# ------------------------------------------------------------ calendar invitations
_ICS_FIELDS = (("SUMMARY", ""), ("DESCRIPTION", ""), ("LOCATION", "Where: "), ("DTSTART", "When: "))


def _calendar_text(ics: str) -> str:
    """An iCalendar body as the words a person wrote in it (summary, description, place, time,
    organizer), not as BEGIN:VCALENDAR lines: an invitation sent to the desk with no note."""
    unfolded = re.sub(r"\r?\n[ \t]", "", ics)  # RFC 5545 folds long lines with a leading space
    found: dict[str, str] = {}
    for line in unfolded.splitlines():
        name, _, value = line.partition(":")
        key = name.split(";")[0].strip().upper()
        if key in ("SUMMARY", "DESCRIPTION", "LOCATION", "DTSTART", "ORGANIZER") and key not in found:
            cn = re.search(r";CN=(\"[^\"]*\"|[^;:]*)", name, re.I)
            found[key] = (cn.group(1).strip('"') + " " if key == "ORGANIZER" and cn else "") + value
    text = [
        prefix + re.sub(r"\\([nN])|\\(.)", lambda m: "\n" if m.group(1) else m.group(2), found[key]).strip()
        for key, prefix in _ICS_FIELDS
        if found.get(key, "").strip()
    ]
    if found.get("ORGANIZER"):
        text.append("Organizer: " + re.sub(r"(?i)mailto:", "", found["ORGANIZER"]).strip())
    return "\n".join(text) or ics


# ------------------------------------------------------------ S/MIME smime.p7m
_PKCS7_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")


def _opaque_signed(msg: Message) -> EmailMessage | None:
    """The MIME entity an opaque S/MIME signature holds (the message's only part), or None;
    encrypted mail (smime-type=enveloped-data) is not readable here and stays as it came."""
    if msg.get_content_type() not in _PKCS7_TYPES:
        return None
    if str(msg.get_param("smime-type") or "signed-data").lower() != "signed-data":
        return None
    content = signed_content(_attachment_bytes(msg))
    if not content:
        return None
    inner = email.message_from_bytes(content, policy=email.policy.default)
    return inner if isinstance(inner, EmailMessage) else None


# --------------------------------------------------------- forwarded as attachment
def _with_attached_message(body: str, msg: Message, warnings: list[str]) -> str:
    """``body`` with the first attached message (message/rfc822) below it.

    Outlook's "Forward as attachment", Gmail's forward of several mails and the phishing-report
    buttons send the problem as an .eml with a short note or none. The body is what agents
    read and the models are fed (triage.text.model_text), so it carries the attached message's
    sender, subject and text: under the separator a forward uses when there is a note (a
    forward's model text keeps what follows it), as the body itself when there is none. The
    .eml stays attached."""
    block = _attached_message(msg, warnings)
    if not block:
        return body
    if not body.strip():
        return block
    return body.rstrip("\n") + "\n\n---------- Forwarded message ----------\n" + block


def _attached_message(msg: Message, warnings: list[str]) -> str:
    """The first attached message's From, Date, Subject and text, or "" when there is none."""
    for part, _ in _leaves(msg):
        if part.get_content_type() != "message/rfc822":
            continue
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        if not isinstance(inner, EmailMessage):
            return ""
        text, _, _ = _body(inner, warnings)
        head = [f"{name}: {_header(inner, name, warnings)}" for name in ("From", "Date", "Subject")]
        block = "\n".join(line for line in head if not line.endswith(": ")) + "\n\n" + text.strip()
        return block.strip() + "\n"
    return ""


# ------------------------------------------------------------- auto replies
def auto_reply_reason(msg: Message) -> str | None:
    """Why this message is machine-sent (so no ticket, no answer), or None.

    RFC 3834 ``Auto-Submitted``, the de-facto ``X-Autoreply``/``X-Autorespond``,
    ``Precedence: bulk|junk|auto_reply``, delivery reports and daemons, and
    the standard out-of-office subjects for clients that set no header.
    ``Precedence: list`` is *not* enough: Google Groups sets it, and many help
    desks receive their mail through such a group alias. Newsletters are bulk mail
    (:func:`bulk_reason`): they name how to unsubscribe, not where to post.
    """
    checks = [
        ("Auto-Submitted", lambda v: v and v.lower() != "no"),
        ("X-Autoreply", bool),
        ("X-Autorespond", bool),
        ("X-Autogenerated", bool),
        ("X-Auto-Reply", bool),
        ("Precedence", _machine_precedence),
        ("X-Precedence", _machine_precedence),
    ]
    ignored: list[str] = []
    for name, test in checks:
        value = _header(msg, name, ignored)
        if value and test(value):
            return f"{name}: {value}"
    if msg.get_content_type() == "multipart/report":
        return "delivery report (multipart/report)"
    sender = _header(msg, "From", ignored).lower()
    if _DAEMON.search(sender) or _EXCHANGE_SYSTEM.search(sender):
        return f"From: {sender}"
    if bulk := bulk_reason(msg):
        return bulk
    if (method := _calendar_method(msg)) in ("REPLY", "COUNTER", "DECLINECOUNTER"):
        return f"calendar response (text/calendar; method={method})"
    if _header(msg, "Return-Path", ignored) == "<>":
        return "Return-Path: <> (bounce)"
    subject = _header(msg, "Subject", ignored)
    if _AUTO_SUBJECT.match(subject) or _DSN_SUBJECT.match(subject):
        return f"Subject: {subject[:60]}"
    return None


def bulk_reason(msg: Message) -> str | None:
    """Why this message is bulk mail (a newsletter, an announcement), or None.

    Bulk senders must offer unsubscribing (``List-Unsubscribe``; Gmail's and Yahoo's rules
    since 2024 also want RFC 8058's ``List-Unsubscribe-Post``), and many set no
    ``Precedence``. A discussion list names where to post (``List-Post``): a help desk
    reached through a Google Groups or Mailman alias gets every customer's mail that way,
    so a list one may post to is never bulk. Mailman's announce-only lists say
    ``List-Post: NO``.
    """
    ignored: list[str] = []
    unsubscribe = _raw_header(msg, "List-Unsubscribe") or _raw_header(msg, "List-Unsubscribe-Post")
    if unsubscribe is None:
        return None
    post = _header(msg, "List-Post", ignored)
    if post and post.strip().upper() != "NO":
        return None
    which = (
        "List-Unsubscribe-Post"
        if _raw_header(msg, "List-Unsubscribe-Post") is not None
        else "List-Unsubscribe"
    )
    return f"bulk mail ({which} and no List-Post: a newsletter or announcement)"


def _machine_precedence(value: str) -> bool:
    """``bulk``, ``junk``, ``auto_reply`` (also written ``auto-reply``): not ``list``."""
    return value.strip().lower().replace("-", "_") in ("bulk", "junk", "auto_reply")


def _calendar_method(msg: Message) -> str | None:
    """The iTIP method of a message that is only a calendar object (an "Accepted:" /
    "Declined:" answer to an invitation), or None; an invitation with a note is a message."""
    part = msg
    if msg.is_multipart():
        texts = [p for p in msg.walk() if p.get_content_maintype() == "text"]
        if not texts or any(p.get_content_type() != "text/calendar" for p in texts):
            return None
        part = texts[0]
    if part.get_content_type() != "text/calendar":
        return None
    return str(part.get_param("method") or "").upper() or None


# ------------------------------------------------------------------ parsing
# Each MIME part costs the stdlib parser and our walk ~0.5 ms of CPU, so a few hundred kB of
# tiny parts would hold a worker for seconds and the size limit alone does not bound it. Real
# mail has a handful of parts; a thousand is far past any mail client's attachments.
MAX_PARTS = 1000
_BOUNDARY_PARAM = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]*)"|([^\s;"]+))', re.IGNORECASE)
_DASH_LINE = re.compile(rb"^--([^\r\n]*)", re.MULTILINE)


class TooManyParts(ValueError):
    """A message of more MIME parts than :data:`MAX_PARTS`: not parsed (its headers are read)."""


def _count_parts(raw: bytes) -> int:
    """The delimiter lines of the boundaries the message declares (linear in its size; an
    upper bound of its parts, since a body may quote a boundary line)."""
    boundaries = {(q or b).rstrip() for q, b in _BOUNDARY_PARAM.findall(raw)}
    if not boundaries:
        return 0
    count = 0
    for match in _DASH_LINE.finditer(raw):
        token = match.group(1).rstrip()
        if token in boundaries or (token.endswith(b"--") and token[:-2] in boundaries):
            count += 1
    return count


def parse_message(raw: bytes) -> dict[str, Any]:
    """Parse one RFC 822 message into the intake dict described in the module docstring.

    Never raises for malformed mail: defects end up in ``warnings``. Raises
    ``TypeError`` only when ``raw`` is not bytes (a str has lost its charset).
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError(f"parse_message expects the raw message bytes, got {type(raw).__name__}")
    try:
        return _parse(bytes(raw))
    except Exception as exc:  # a stdlib crasher: keep what can be said, never lose the message
        return unparseable(bytes(raw), exc)


def unparseable(raw: bytes, exc: BaseException) -> dict[str, Any]:
    """The intake dict of a message the parser could not read: no body, the reason as a
    defect, and what its headers say (read alone, without the MIME tree), so the refused
    list shows who sent what."""
    head = _headers_only(raw)
    warnings: list[str] = []
    subject = " ".join(_header(head, "Subject", warnings).split()) if head is not None else ""
    senders = _addresses(head, "From", warnings) if head is not None else []
    ids = _message_ids(_header(head, "Message-ID", warnings)) if head is not None else []
    return {
        "subject": subject,
        "body": "",
        "body_html": None,
        "model_body": "",
        "model_text": model_text(subject, ""),
        "from": senders[0] if senders else {"name": "", "address": ""},
        "to": [],
        "cc": [],
        "message_id": ids[0] if ids else None,
        "in_reply_to": None,
        "references": [],
        "date": None,
        "attachments": [],
        "auto_reply": False,
        "auto_reply_reason": None,
        "is_forward": False,
        "channel": "email",
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "content_hash": hashlib.sha256(raw).hexdigest(),
        "empty": True,
        "unreadable": True,
        "defects": [f"unparseable: {exc.__class__.__name__}: {exc}"[:300]],
        "warnings": list(dict.fromkeys(warnings)),
    }


def _headers_only(raw: bytes) -> Message | None:
    """The message's header block alone (the body kept as one opaque payload), or None."""
    try:
        return email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    except Exception:  # noqa: BLE001 - headers that not even this reads: say nothing of them
        return None


def content_hash(sender: str, subject: str, body: str, attachment_hashes: list[str]) -> str:
    """What a message *says*, independent of the transport headers added on each delivery."""
    parts = [
        sender.lower(),
        " ".join(subject.split()),
        body.replace("\r\n", "\n").strip(),
        *sorted(attachment_hashes),
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _defects(msg: Message) -> list[str]:
    """MIME defects of every part (missing boundaries, bad base64 padding, ...), by class name."""
    found = []
    for part in msg.walk():
        found += [type(d).__name__ for d in getattr(part, "defects", [])]
    return list(dict.fromkeys(found))


def _parse(raw: bytes) -> dict[str, Any]:
    parts = _count_parts(raw)
    if parts > MAX_PARTS:
        raise TooManyParts(f"{parts} MIME parts, at most {MAX_PARTS} are read")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    warnings: list[str] = []
    subject = " ".join(_header(msg, "Subject", warnings).split())
    body, html_text, body_ids = _body(msg, warnings)
    parts = [p for p, _ in _leaves(msg) if _is_attachment(p, body_ids)]
    if not body.strip() and (signed := _opaque_signed(msg)) is not None:  # S/MIME smime.p7m
        body, html_text, inner_ids = _body(signed, warnings)
        parts += [p for p, _ in _leaves(signed) if _is_attachment(p, inner_ids)]
    if body.lstrip()[:15].upper() == "BEGIN:VCALENDAR":  # an invitation with no note: its words
        body = _calendar_text(body)
    tnef = _tnef(msg, warnings)
    if tnef is not None and not body.strip():  # Outlook's rich text: the body is in winmail.dat
        body, html_text = _tnef_body(tnef, html_text)
    is_forward = is_forward_subject(subject)
    if is_forward or not body.strip():  # "Forward as attachment": the problem is in the .eml
        body = _with_attached_message(body, msg, warnings)
    model_body = normalise_forward(body) if is_forward else normalise(body)
    attachments = [_attachment(p, i, warnings) for i, p in enumerate(parts, start=1)]
    attachments += _tnef_files(tnef, len(attachments))
    senders = _addresses(msg, "From", warnings)
    in_reply_to = _message_ids(_header(msg, "In-Reply-To", warnings))
    ids = _message_ids(_header(msg, "Message-ID", warnings))
    reason = auto_reply_reason(msg)
    sender = senders[0] if senders else {"name": "", "address": ""}
    return {
        "subject": subject,
        "body": body,
        "body_html": html_text,
        "model_body": model_body,
        "model_text": model_text(subject, model_body),
        "from": sender,
        "to": _addresses(msg, "To", warnings),
        "cc": _addresses(msg, "Cc", warnings),
        "message_id": ids[0] if ids else None,
        "in_reply_to": in_reply_to[0] if in_reply_to else None,
        "references": _message_ids(_header(msg, "References", warnings)),
        "date": _date(msg, warnings),
        "attachments": attachments,
        "auto_reply": reason is not None,
        "auto_reply_reason": reason,
        "is_forward": is_forward,
        "channel": "email",
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "content_hash": content_hash(sender["address"], subject, body, [a["sha256"] for a in attachments]),
        "empty": not subject.strip() and not body.strip() and not attachments,
        "unreadable": False,
        "defects": _defects(msg),
        "warnings": list(dict.fromkeys(warnings)),
    }


# ---------------------------------------------------------------- threading
def find_reference(
    intake: Mapping[str, Any],
    *,
    lookup: Callable[[str], str | None] | None = None,
    pattern: re.Pattern[str] | str = SUBJECT_TAG,
) -> str | None:
    """The ticket an incoming message follows up on, or None for a new ticket.

    Headers first: ``In-Reply-To`` then ``References`` (newest first), each passed
    to ``lookup(message_id) -> reference | None``, which the store answers from
    the message-ids it sent. They prove the sender saw our mail; a subject tag
    (``[#TCK-42]`` by default) is the fallback for clients that drop headers.
    Either can be forged: the caller should check that the sender may write to
    the ticket (requester, watcher or agent) before appending a follow-up.
    """
    if lookup is not None:
        ids = [intake.get("in_reply_to")] + list(reversed(intake.get("references") or []))
        for mid in dict.fromkeys(i for i in ids if i):
            ref = lookup(mid)
            if ref:
                return ref
    regex = re.compile(pattern, re.I) if isinstance(pattern, str) else pattern
    match = regex.search(intake.get("subject") or "")
    if not match:
        return None
    return match.group("ref") if "ref" in regex.groupindex else match.group(1 if regex.groups else 0)


def tag_subject(reference: str, subject: str) -> str:
    """``"[#TCK-42] subject"`` for outgoing mail, so replies thread back (idempotent)."""
    tag = f"[#{reference}]"
    return subject if tag.lower() in subject.lower() else f"{tag} {subject}".strip()
