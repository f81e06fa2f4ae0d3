"""Real-world mail nobody wrote for us: CPython's own e-mail test corpus through intake.

``tests/mail_corpus.py`` is generated to the outcomes we expect; these 60-odd messages
(``Lib/test/test_email/data/msg_*.txt``, PSF licence, shipped with CPython) were written
by others to break e-mail parsers: nested multiparts, broken boundaries, RFC 2047 and
RFC 2231 headers in odd charsets, message/rfc822 parts, missing bodies. Whatever they
are, intake must account for each one exactly once (a ticket, a thread, a duplicate or a
kept refusal), never fail, and a second poll must find nothing new.
"""

from __future__ import annotations

import email
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from triage.mail.pollers import MailboxPoller, MaildirSource
from triage.store import inbox, mail_log
from triage.store.inbox import OUTCOMES
from triage.store.tables import TicketRow

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
DATA = Path(email.__file__).parent.parent / "test" / "test_email" / "data"
MESSAGES = sorted(DATA.glob("msg_*.txt"))

# Debian's python3 strips Lib/test; the pyenv/CPython builds CI uses keep it.
pytestmark = pytest.mark.skipif(
    len(MESSAGES) < 40, reason=f"CPython's e-mail test corpus is not installed at {DATA}"
)


def test_every_public_corpus_message_is_accounted_for_once(store, tmp_path):
    box = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    for i, path in enumerate(MESSAGES):
        (box / "new" / f"{i:04d}.{path.stem}").write_bytes(path.read_bytes())

    outcomes: list[str] = []

    def handle(message):
        outcomes.append(inbox.receive_raw(store, message, now=NOW).outcome)

    report = MailboxPoller(MaildirSource(box), handle).poll_once()
    assert (report.failed, report.handled) == (0, len(MESSAGES))
    counts = Counter(outcomes)
    assert set(counts) <= set(OUTCOMES)
    # most of these are ordinary mail with odd encodings: they must become tickets, not refusals
    assert counts["created"] >= len(MESSAGES) // 2, counts
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(TicketRow)) == counts["created"]
        refused = mail_log.listing(s)
        assert len(refused) == counts["refused"] and all(r["reason"] for r in refused)

    report, again = MailboxPoller(MaildirSource(box), handle).poll_once(), outcomes[len(MESSAGES) :]
    assert (report.handled, again) == (0, [])
