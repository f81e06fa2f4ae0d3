"""Moved to :mod:`triage.mail.pollers`; this name keeps old imports working."""
from __future__ import annotations

from triage.mail.pollers import (ImapSource, MailboxPoller, MaildirSource, MboxSource,  # noqa: F401
                                 PollReport, Source)
