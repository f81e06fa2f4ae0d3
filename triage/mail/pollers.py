"""Mailbox polling: IMAP (``imaplib``) and local Maildir/mbox (``mailbox``).

The one promise: a message is acknowledged (IMAP ``\\Seen``; for Maildir and
mbox a line in the poller's own ``.triage-seen`` file) only after the handler
returned. If the handler raises or the process dies in between, the message is
still unseen and is handled again on the next poll, so nothing acknowledged is
lost; the handler must therefore be idempotent (the store de-duplicates on
Message-ID + sender + content hash). The handler receives the parsed message
with its raw bytes under ``"raw"``, so a refusal can keep the message itself.

Usage::

    poller = MailboxPoller(MaildirSource("/var/mail/helpdesk"), handler)
    poller = MailboxPoller(ImapSource("imap.example.org", "desk", password), handler)
    report = poller.poll_once()        # PollReport(handled=3, failed=0)
    poller.run(interval=60, stop=threading.Event())
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
import mailbox
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from triage.mail.parsing import parse_message

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
    """Reads unseen messages from a source, parses each, calls ``handler(intake)``, then acks.

    With ``handle_many`` instead (e.g. ``lambda ms: inbox.receive_many(store, ms)``), the
    messages go to it ``batch`` at a time and each is acked once its entry came back (an
    entry that is an exception: left unseen, as a failing ``handler``).
    """

    def __init__(
        self,
        source: Source,
        handler: Handler | None = None,
        parse: Callable[[bytes], dict[str, Any]] = parse_message,
        *,
        handle_many: Callable[[list[dict[str, Any]]], list[Any]] | None = None,
        batch: int = 32,
    ) -> None:
        if (handler is None) == (handle_many is None):
            raise ValueError("give a handler or handle_many (one of them)")
        self.source = source
        self.handler = handler
        self.handle_many = handle_many
        self.batch = batch
        self.parse = parse

    def poll_once(self) -> PollReport:
        """Handle every pending message once; a failure is logged and left unseen for a retry."""
        report = PollReport()
        waiting: list[tuple[str, dict[str, Any]]] = []
        try:
            for key, raw in self.source.pending():
                try:
                    message = self.parse(raw)
                    message.setdefault("raw", raw)  # a refusal keeps the message itself
                    if self.handler is not None:
                        self.handler(message)
                except Exception as exc:  # one bad message must not block the others
                    self._failed(report, key, exc)
                    continue
                if self.handler is not None:
                    self.source.ack(key)
                    report.handled += 1
                    continue
                waiting.append((key, message))
                if len(waiting) >= self.batch:
                    self._hand_over(waiting, report)
            self._hand_over(waiting, report)
        finally:
            self.source.close()
        return report

    def _hand_over(self, waiting: list[tuple[str, dict[str, Any]]], report: PollReport) -> None:
        """The batch to ``handle_many``; ack each message whose entry came back (not an error)."""
        if not waiting:
            return
        assert self.handle_many is not None
        try:
            entries = self.handle_many([message for _, message in waiting])
        except Exception as exc:  # nobody acknowledged: every message is read again next poll
            for key, _ in waiting:
                self._failed(report, key, exc)
            waiting.clear()
            return
        for (key, _), entry in zip(waiting, entries):
            if isinstance(entry, BaseException):
                self._failed(report, key, entry)
                continue
            self.source.ack(key)
            report.handled += 1
        waiting.clear()

    @staticmethod
    def _failed(report: PollReport, key: str, exc: BaseException) -> None:
        log.error("mail %s: handler failed, left unseen for retry", key, exc_info=exc)
        report.failed += 1
        report.errors.append(f"{key}: {exc.__class__.__name__}: {exc}")

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

    def __init__(
        self,
        host: str,
        user: str,
        password: str,
        *,
        port: int = 993,
        folder: str = "INBOX",
        ssl: bool = True,
        connect: Callable[[], Any] | None = None,
    ) -> None:
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
class SeenLog:
    """Keys of handled messages, one per line, in a file beside the mailbox (append + fsync).

    Local mailboxes carry their read state in the messages themselves (mbox
    ``Status:``/``X-Status:`` headers, Maildir ``:2,S`` flags), which the sender or
    another mail client sets as it likes: a message that arrives with
    ``Status: RO`` is not one we handled. So the poller keeps its own record and
    reads every message not in it, whatever headers or flags it carries.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._keys: set[str] | None = None

    def keys(self) -> set[str]:
        if self._keys is None:
            try:
                self._keys = set(self.path.read_text(encoding="ascii").split())
            except FileNotFoundError:
                self._keys = set()
        return self._keys

    def add(self, key: str) -> None:
        with open(self.path, "a", encoding="ascii") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.keys().add(key)


def delivery_order(key: str) -> list[Any]:
    """A Maildir name's numbers compared as numbers: ``1700000000.M999P7Q1.host`` (seconds,
    microseconds, pid, counter) comes before ``….M1000P7Q2.host``, which plain text order
    puts first because the microseconds are not zero-padded (Python's and most MTAs' names)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


class MaildirSource:
    """Every message not yet handled (``.triage-seen`` in the Maildir), ``new/`` and ``cur/`` alike.

    Acking records the key and, for mail clients, moves the message to ``cur/`` with the ``S`` flag.
    """

    def __init__(self, path: str | Path) -> None:
        self.box = mailbox.Maildir(str(path), factory=None, create=False)
        self.seen = SeenLog(Path(path) / ".triage-seen")

    def pending(self) -> Iterator[tuple[str, bytes]]:
        for key in sorted(self.box.keys(), key=delivery_order):
            if key in self.seen.keys():
                continue
            try:
                raw = self.box.get_bytes(key)
            except KeyError:  # delivered elsewhere meanwhile
                continue
            yield key, raw

    def ack(self, key: str) -> None:
        self.seen.add(key)
        try:
            msg = self.box.get_message(key)
            msg.set_subdir("cur")
            msg.add_flag("S")
            self.box[key] = msg
        except (KeyError, OSError):  # moved by a mail client meanwhile: our record is what counts
            log.debug("maildir %s: could not flag as seen", key, exc_info=True)

    def close(self) -> None:
        self.box.close()


class MboxSource:
    """Every message of an mbox file not yet handled (``<mbox>.triage-seen``), locked while polled.

    A message is known by the sha256 of its bytes and its occurrence number, so the
    file itself is never rewritten and two identical copies are still two messages.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.box: mailbox.mbox | None = None
        self.seen = SeenLog(self.path + ".triage-seen")

    def pending(self) -> Iterator[tuple[str, bytes]]:
        self.box = mailbox.mbox(self.path, create=False)
        self.box.lock()
        occurrences: dict[str, int] = {}
        for key in list(self.box.keys()):
            raw = self.box.get_bytes(key)
            digest = hashlib.sha256(raw).hexdigest()
            occurrences[digest] = occurrences.get(digest, 0) + 1
            ident = f"{digest}:{occurrences[digest]}"
            if ident not in self.seen.keys():
                yield ident, raw

    def ack(self, key: str) -> None:
        self.seen.add(key)

    def close(self) -> None:
        if self.box is not None:
            self.box.unlock()
            self.box.close()
            self.box = None
