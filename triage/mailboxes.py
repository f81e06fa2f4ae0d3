"""Mailbox polling: IMAP (``imaplib``) and local Maildir/mbox (``mailbox``).

The one promise: a message is acknowledged (IMAP ``\\Seen``, Maildir ``S``,
mbox ``R``) only after the handler returned. If the handler raises or the
process dies in between, the message is still unseen and is handled again on
the next poll, so nothing acknowledged is lost; the handler must therefore be
idempotent (the store de-duplicates on Message-ID, as it does on
``Idempotency-Key``).

Usage::

    poller = MailboxPoller(MaildirSource("/var/mail/helpdesk"), handler)
    poller = MailboxPoller(ImapSource("imap.example.org", "desk", password), handler)
    report = poller.poll_once()        # PollReport(handled=3, failed=0)
    poller.run(interval=60, stop=threading.Event())
"""
from __future__ import annotations

import imaplib
import logging
import mailbox
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from .mail import parse_message

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


class Source(Protocol):
    """Where raw messages come from; ``ack`` marks one as handled."""

    def pending(self) -> Iterator[tuple[str, bytes]]: ...

    def ack(self, key: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class PollReport:
    handled: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class MailboxPoller:
    """Reads unseen messages from a source, parses each, calls ``handler(intake)``, then acks."""

    def __init__(self, source: Source, handler: Handler,
                 parse: Callable[[bytes], dict[str, Any]] = parse_message) -> None:
        self.source = source
        self.handler = handler
        self.parse = parse

    def poll_once(self) -> PollReport:
        """Handle every pending message once; a failure is logged and left unseen for a retry."""
        report = PollReport()
        try:
            for key, raw in self.source.pending():
                try:
                    self.handler(self.parse(raw))
                except Exception as exc:  # one bad message must not block the others
                    log.exception("mail %s: handler failed, left unseen for retry", key)
                    report.failed += 1
                    report.errors.append(f"{key}: {exc.__class__.__name__}: {exc}")
                    continue
                self.source.ack(key)
                report.handled += 1
        finally:
            self.source.close()
        return report

    def run(self, interval: float, stop: threading.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set (for a background thread)."""
        while not stop.is_set():
            try:
                report = self.poll_once()
                if report.handled or report.failed:
                    log.info("mail poll: %d handled, %d failed", report.handled, report.failed)
            except Exception:  # server down, bad credentials: retry next round
                log.exception("mail poll failed")
            stop.wait(interval)


# ---------------------------------------------------------------------- IMAP
_UID_RE = re.compile(rb"UID (\d+)")


class ImapSource:
    """Unseen messages of one IMAP folder, fetched with ``BODY.PEEK[]`` so fetching does not mark them.

    ``connect`` builds the client (default: ``imaplib.IMAP4_SSL(host, port)``);
    tests pass a stub with the same ``login/select/uid/logout`` methods.
    """

    def __init__(self, host: str, user: str, password: str, *, port: int = 993,
                 folder: str = "INBOX", ssl: bool = True,
                 connect: Callable[[], Any] | None = None) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.folder = folder
        cls = imaplib.IMAP4_SSL if ssl else imaplib.IMAP4
        self._connect = connect or (lambda: cls(host, port))
        self._client: Any = None

    def _open(self) -> Any:
        client = self._connect()
        try:
            client.login(self.user, self.password)
            typ, _ = client.select(self.folder)
            if typ != "OK":
                raise imaplib.IMAP4.error(f"cannot select folder {self.folder!r}")
        except Exception:
            getattr(client, "shutdown", lambda: None)()  # do not leak the socket
            raise
        return client

    def pending(self) -> Iterator[tuple[str, bytes]]:
        self._client = self._open()
        typ, data = self._client.uid("SEARCH", None, "UNSEEN")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"UID SEARCH UNSEEN answered {typ}")
        uids = (data[0] or b"").split() if data else []
        for uid in uids:
            raw = self._fetch(uid.decode())
            if raw is not None:
                yield uid.decode(), raw

    def _fetch(self, uid: str) -> bytes | None:
        typ, data = self._client.uid("FETCH", uid, "(BODY.PEEK[])")
        if typ != "OK":
            log.warning("IMAP FETCH %s answered %s", uid, typ)
            return None
        for item in data or []:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None  # the message was expunged between SEARCH and FETCH

    def ack(self, key: str) -> None:
        typ, _ = self._client.uid("STORE", key, "+FLAGS", "(\\Seen)")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"UID STORE {key} +FLAGS \\Seen answered {typ}")

    def close(self) -> None:
        if self._client is None:
            return
        try:
            self._client.logout()
        except Exception:
            log.debug("IMAP logout failed", exc_info=True)
        self._client = None


# ------------------------------------------------------------- local mailboxes
class MaildirSource:
    """Messages without the ``S`` (seen) flag; acked by moving them to ``cur/`` with ``S``."""

    def __init__(self, path: str | Path) -> None:
        self.box = mailbox.Maildir(str(path), factory=None, create=False)

    def pending(self) -> Iterator[tuple[str, bytes]]:
        for key in sorted(self.box.keys()):
            try:
                msg = self.box.get_message(key)
            except KeyError:  # delivered elsewhere meanwhile
                continue
            if "S" not in msg.get_flags():
                yield key, self.box.get_bytes(key)

    def ack(self, key: str) -> None:
        msg = self.box.get_message(key)
        msg.set_subdir("cur")
        msg.add_flag("S")
        self.box[key] = msg

    def close(self) -> None:
        self.box.close()


class MboxSource:
    """Messages without the ``R`` (read) status flag in an mbox file, locked while polled."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.box: mailbox.mbox | None = None

    def pending(self) -> Iterator[tuple[str, bytes]]:
        self.box = mailbox.mbox(self.path, create=False)
        self.box.lock()
        for key in list(self.box.keys()):
            msg = self.box.get_message(key)
            if "R" not in msg.get_flags():
                yield str(key), self.box.get_bytes(key)

    def ack(self, key: str) -> None:
        assert self.box is not None
        msg = self.box.get_message(int(key))
        msg.add_flag("RO")
        self.box[int(key)] = msg
        self.box.flush()

    def close(self) -> None:
        if self.box is not None:
            self.box.unlock()
            self.box.close()
            self.box = None
