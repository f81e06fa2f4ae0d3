"""E-mail, both ways: parsing what arrives, polling mailboxes, composing what leaves.

- :mod:`triage.mail.parsing`   raw RFC 822 bytes → one intake dict (never raises on bad mail)
- :mod:`triage.mail.pollers`   IMAP / Maildir / mbox sources and the poller that acks after handling
- :mod:`triage.mail.outbound`  a rendered notice → a safe ``EmailMessage``; SMTP and folder transports
- :mod:`triage.mail.mime`      a notice's MIME bytes written directly (the outbox's fast path)
- :mod:`triage.mail.templates` the Jinja2 templates (text + HTML), overridable from a folder

The names most callers need are re-exported here, so ``from triage.mail import
parse_message`` keeps working since this package replaced the ``triage/mail.py`` module.
"""

from __future__ import annotations

from triage.charsets import decode_bytes
from triage.mail.parsing import (
    SUBJECT_TAG,
    auto_reply_reason,
    content_hash,
    find_reference,
    parse_message,
    tag_subject,
)

__all__ = [
    "SUBJECT_TAG",
    "auto_reply_reason",
    "content_hash",
    "decode_bytes",
    "find_reference",
    "parse_message",
    "tag_subject",
]
