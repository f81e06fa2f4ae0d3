"""Outgoing mail: a queued notice → a safe ``EmailMessage`` → SMTP or a folder.

Composing is where header injection would happen, so every header value is
built here from parts that cannot carry a line break: ticket text (subjects,
names) is collapsed to one line with control characters removed before it
reaches ``Subject:``, and recipients are single plain addresses checked by
``triage.store.outbound.mail_address`` when the mail was queued (and again here).

Every mail says it is automatic (``Auto-Submitted``, RFC 3834) so well-behaved
auto-responders do not answer it, and carries the ``[#TCK-n]`` subject tag,
``Message-ID``, ``In-Reply-To`` and ``References``, so a customer's answer
threads back through the desk's own intake.

Transports: :class:`SmtpTransport` (plain, STARTTLS or TLS, optional login) and
:class:`FolderTransport` (one ``.eml`` file per mail: the demo and any install
without SMTP; the admin outbox page lists them).
"""

from __future__ import annotations

import email.utils
import os
import re
import smtplib
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from triage.mail import mime as _mime
from triage.mail.parsing import tag_subject
from triage.mail.templates import Templates

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# Our own From may be a local name (the default helpdesk@localhost of a demo).
_FROM = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_MSGID = re.compile(r"^<[^<>\s]{1,400}>$")


def one_line(text: Any, limit: int = 200) -> str:
    """Header-safe text: CR, LF and every other control character become one space."""
    return " ".join(_CONTROL.sub(" ", str(text or "")).split())[:limit]


def _address(value: str, pattern: re.Pattern[str] = _ADDRESS) -> str:
    if not pattern.match(value or ""):
        raise ValueError(f"expected one plain e-mail address, got {value!r}")
    return value


def _msgids(values: Any) -> list[str]:
    return [v for v in (values or []) if isinstance(v, str) and _MSGID.match(v)]


@dataclass
class MailSettings:
    """What every outgoing mail needs besides its content."""

    from_address: str = "helpdesk@localhost"
    from_name: str = "Help desk"
    public_url: str = "http://127.0.0.1:8000"
    templates_dir: str | None = None
    attachments_root: str | None = None

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2] or "localhost"


@dataclass
class Composer:
    settings: MailSettings
    templates: Templates = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Templates(self.settings.templates_dir)

    def compose(self, mail: dict[str, Any]) -> EmailMessage:
        """The message for one claimed outbox row (see ``triage.store.outbound.claim``)."""
        return self._message(mail, *self._rendered(mail))

    def render(self, mail: dict[str, Any]) -> Outgoing:
        """:meth:`compose`'s mail as the bytes to send, built without ``email.message``.

        Composing an ``EmailMessage`` and flattening it cost about 2.5 ms a mail (its header
        registry parses every header we set, then folds it again): more than everything
        else the outbox does per mail. A notice is always the same shape (a few one-line
        headers, a text and an HTML part), so here it is written directly; a mail with
        attachments or a header this writer does not handle goes through :meth:`compose`.
        ``tests/test_mail_compose.py`` parses both and checks they say the same.
        """
        subject, text, html, reference = self._rendered(mail)
        data = None
        if not (mail.get("attachments") and self.settings.attachments_root):
            data = _mime.write(self._headers(mail, subject, reference), text, html)
        if data is None:
            data = bytes(self._message(mail, subject, text, html, reference))
        return Outgoing(self.settings.from_address, self._to(mail), str(mail["message_id"]), data)

    def _rendered(self, mail: dict[str, Any]) -> tuple[str, str, str, str | None]:
        """(subject, text, html, ticket reference) from the templates."""
        context = {
            **mail.get("context", {}),
            "desk_name": self.settings.from_name,
            "portal_url": self.settings.public_url.rstrip("/"),
            "attachments": mail.get("attachments") or [],
            "mail_subject": one_line(mail.get("subject")),
        }
        subject, text, html = self.templates.render(mail["template"], context)
        return subject, text, html, context.get("reference")

    def _to(self, mail: dict[str, Any]) -> list[str]:
        return [_address(a) for a in mail["to"] if a.lower() != self.settings.from_address.lower()]

    def _headers(self, mail: dict[str, Any], subject: str, reference: str | None) -> list[tuple[str, str]]:
        """The top-level headers :meth:`_message` sets, in its order, as plain strings."""
        headers = [
            ("From", self._from),
            ("To", ", ".join(self._to(mail))),
            ("Subject", one_line(tag_subject(reference, subject) if reference else subject, 250)),
            ("Date", email.utils.formatdate(localtime=False)),
            ("Message-ID", str(mail["message_id"])),
        ]
        if parent := _msgids([mail.get("in_reply_to")]):
            headers.append(("In-Reply-To", parent[0]))
        if refs := _msgids(mail.get("references")):
            headers.append(("References", " ".join(refs)))
        headers.append(("Auto-Submitted", one_line(mail.get("auto_submitted") or "auto-generated", 40)))
        headers.append(("X-Auto-Response-Suppress", "All"))  # Exchange: no out-of-office answers to us
        if reference:
            headers.append(("X-Triage-Ticket", one_line(reference, 40)))
        return headers

    @property
    def _from(self) -> str:
        return email.utils.formataddr(
            (one_line(self.settings.from_name, 80), _address(self.settings.from_address, _FROM))
        )

    def _message(
        self, mail: dict[str, Any], subject: str, text: str, html: str, reference: str | None
    ) -> EmailMessage:
        msg = EmailMessage()
        for name, value in self._headers(mail, subject, reference):
            msg[name] = value
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        self._attach(msg, mail.get("attachments") or [])
        return msg

    def _attach(self, msg: EmailMessage, files: list[dict]) -> None:
        root = self.settings.attachments_root
        if not files or not root:
            return
        for item in files:
            sha = str(item.get("sha256", ""))
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                continue
            path = Path(root) / sha[:2] / sha[2:4] / sha
            maintype, _, subtype = str(item.get("content_type") or "application/octet-stream").partition("/")
            msg.add_attachment(
                path.read_bytes(),
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=one_line(item.get("filename") or "attachment", 150),
            )


@dataclass
class Outgoing:
    """One composed mail as a transport takes it: envelope and the message's bytes (``\\n`` lines)."""

    sender: str
    recipients: list[str]
    message_id: str
    data: bytes


class Transport(Protocol):
    def send(self, msg: Outgoing | EmailMessage) -> None: ...


@dataclass
class SmtpTransport:
    """SMTP with ``security`` = ``starttls`` (port 587), ``tls`` (465) or ``none`` (a local relay).

    One connection serves the mails of a delivery pass: it is reused while it was used
    less than ``reuse_seconds`` ago (servers drop idle clients) and opened again after
    any error. Connecting, greeting and logging in per mail cost more than the mail.
    """

    host: str
    port: int = 587
    security: str = "starttls"
    user: str = ""
    password: str = ""
    timeout: float = 30.0
    reuse_seconds: float = 10.0
    _client: smtplib.SMTP | None = field(default=None, init=False, repr=False)
    _last: float = field(default=0.0, init=False, repr=False)

    def _connect(self) -> smtplib.SMTP:
        if self.security not in ("starttls", "tls", "none"):
            raise ValueError(f"SMTP security: expected starttls, tls or none, got {self.security!r}")
        # loading the CA store costs ~0.1-0.4 s: only when TLS is used
        context = ssl.create_default_context() if self.security != "none" else None
        if self.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                client.starttls(context=context)
            if self.user:
                client.login(self.user, self.password)
        except BaseException:
            client.close()
            raise
        return client

    def send(self, msg: Outgoing | EmailMessage) -> None:
        if self._client is None or time.monotonic() - self._last > self.reuse_seconds:
            self.close()
            self._client = self._connect()
        try:
            if isinstance(msg, Outgoing):  # SMTP's DATA wants CRLF lines (smtplib adds none to bytes)
                data = msg.data.replace(b"\n", b"\r\n")
                self._client.ehlo_or_helo_if_needed()
                if self._client.has_extn("pipelining"):
                    refused = pipelined(self._client, msg.sender, msg.recipients, data)
                else:
                    refused = self._client.sendmail(msg.sender, msg.recipients, data)
            else:
                refused = self._client.send_message(msg)
        except BaseException:
            self.close()  # a broken conversation is not reused
            raise
        self._last = time.monotonic()
        if refused:  # some recipients refused: the rest got it; say which failed
            raise smtplib.SMTPRecipientsRefused(refused)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (smtplib.SMTPException, OSError):
                self._client.close()
            self._client = None


_LEADING_DOT = re.compile(rb"(?m)^\.")


def pipelined(client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> dict:
    """One mail over a relay that offers ``PIPELINING`` (RFC 2920): ``MAIL``, every ``RCPT``
    and ``DATA`` in one write and their answers read together, then the message: two round
    trips with the relay where ``smtplib.sendmail`` takes three and one per recipient, and
    less of smtplib's address parsing (``sender`` and ``recipients`` are plain addresses,
    checked when composed). Answers and errors as ``sendmail``'s: the refused recipients
    (``{address: (code, text)}``) when some took it; ``SMTPSenderRefused``,
    ``SMTPRecipientsRefused`` or ``SMTPDataError`` when none did (the transaction reset).
    ``data``: the message with CRLF line ends."""
    size = f" SIZE={len(data)}" if client.has_extn("size") else ""
    commands = [f"MAIL FROM:<{sender}>{size}", *(f"RCPT TO:<{r}>" for r in recipients), "DATA"]
    client.send("".join(f"{c}\r\n" for c in commands))
    mail = client.getreply()
    refused = {}
    for rcpt in recipients:
        code, text = client.getreply()
        if code not in (250, 251):
            refused[rcpt] = (code, text)
    data_code, data_text = client.getreply()
    if data_code == 354 and (mail[0] != 250 or len(refused) == len(recipients)):
        client.close()  # a relay that wants a message nobody may receive: end the conversation
        raise smtplib.SMTPDataError(data_code, b"DATA accepted without a sender or recipient")
    if mail[0] != 250:
        client.rset()
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if len(refused) == len(recipients):
        client.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    if data_code != 354:
        client.rset()
        raise smtplib.SMTPDataError(data_code, data_text)
    body = _LEADING_DOT.sub(b"..", data)
    client.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    code, text = client.getreply()
    if code != 250:
        client.rset()
        raise smtplib.SMTPDataError(code, text)
    return refused


@dataclass
class FolderTransport:
    """Each mail as ``<folder>/<time>-<id>.eml`` (written atomically): mail without a server."""

    folder: str | Path

    def send(self, msg: Outgoing | EmailMessage) -> None:
        folder = Path(self.folder)
        message_id = msg.message_id if isinstance(msg, Outgoing) else str(msg["Message-ID"])
        name = re.sub(r"[^A-Za-z0-9._-]", "_", message_id.strip("<>"))[:150]
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        except FileNotFoundError:  # made on the first mail (not a mkdir per mail), or again if removed
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(msg.data if isinstance(msg, Outgoing) else bytes(msg))
        os.replace(tmp, folder / f"{name}.eml")


@dataclass
class Mailer:
    """Composes claimed outbox rows and hands them to a transport (``send(mail)`` for delivery)."""

    settings: MailSettings
    transport: Transport
    composer: Composer = field(init=False)

    def __post_init__(self) -> None:
        self.composer = Composer(self.settings)

    def send(self, mail: dict[str, Any]) -> None:
        """Compose and send one claimed row (one delivery loop per Mailer: not thread-safe)."""
        self.transport.send(self.composer.render(mail))

    def close(self) -> None:
        """End of a delivery pass: let go of a kept SMTP connection."""
        getattr(self.transport, "close", lambda: None)()
