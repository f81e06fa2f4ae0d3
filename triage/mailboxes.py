"""Moved to :mod:`triage.mail.pollers`; this name keeps old imports working."""

from __future__ import annotations

from triage.mail.pollers import (
    ImapSource as ImapSource,
    MailboxPoller as MailboxPoller,
    MaildirSource as MaildirSource,
    MboxSource,  # noqa: F401
    PollReport as PollReport,
    Source as Source,
)
