"""Outbox mail throughput to a loopback SMTP server, beside that server's own floor.

Reference (same run, same server): a raw ``smtplib`` loop sending N prepared
messages, one connection per message, as the outbox transport does. Ours: N
mails queued in the store (one transaction each, as intake does), then
delivered by ``triage.store.outbound.deliver`` (claim under a lease, compose
from the Jinja2 templates, send, record the outcome). The ratio says what the
durable outbox costs over bare SMTP.

    .venv/bin/python bench/bench_outbox.py [--mails 300] [--database sqlite:///...]
"""

from __future__ import annotations

import argparse
import smtplib
import socket
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosmtpd.controller import Controller  # noqa: E402

from triage.mail.outbound import Mailer, MailSettings, SmtpTransport  # noqa: E402
from triage.store import Store, outbound  # noqa: E402


class Counting:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def floor(port: int, n: int, reuse: bool) -> float:
    """mails/s of bare smtplib sending one prepared message n times, nothing else:
    one connection for all (``reuse``, as the outbox transport does within a pass) or one each."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "desk@desk.example", "c@example.com", "floor"
    msg.set_content("x" * 400)
    start = time.perf_counter()
    if reuse:
        with smtplib.SMTP("127.0.0.1", port) as client:
            for _ in range(n):
                client.send_message(msg)
    else:
        for _ in range(n):
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.send_message(msg)
    return n / (time.perf_counter() - start)


def ours(port: int, n: int, url: str) -> tuple[float, float]:
    """(mails/s delivered by the outbox, queue inserts/s) on a fresh store."""
    store = Store(url)
    store.upgrade()
    start = time.perf_counter()
    for i in range(n):
        with store.session() as s:
            outbound.queue(
                s,
                "signin",
                [f"c{i}@example.com"],
                subject="Your sign-in link",
                context={"address": f"c{i}@example.com", "signin_path": f"/x/{i}"},
            )
    queued = n / (time.perf_counter() - start)
    mailer = Mailer(MailSettings(from_address="desk@desk.example"), SmtpTransport("127.0.0.1", port, "none"))
    start, sent = time.perf_counter(), 0
    while sent < n:
        got = outbound.deliver(store, mailer.send, domain="desk.example", limit=100)
        if not any(got.values()):
            break
        sent += got["sent"]
    mailer.close()
    rate = sent / (time.perf_counter() - start)
    store.dispose()
    if sent != n:
        raise SystemExit(f"only {sent} of {n} mails were delivered")
    return rate, queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--database", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    handler = Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
            floor(controller.port, 20, reuse=False)  # warm-up
            reference = floor(controller.port, args.mails, reuse=True)
            per_connection = floor(controller.port, args.mails, reuse=False)
            rate, queued = ours(controller.port, args.mails, url)
    finally:
        controller.stop()
    print(f"{'':32}{'mails/s':>10}")
    print(f"{'smtplib loop, one connection':32}{reference:>10.1f}   (the server's floor)")
    print(f"{'smtplib loop, connection each':32}{per_connection:>10.1f}")
    print(f"{'outbox deliver (ours)':32}{rate:>10.1f}   ratio {rate / reference:.2f}")
    print(f"{'outbox queue inserts':32}{queued:>10.1f}")
    print(f"server accepted {handler.count} messages")


if __name__ == "__main__":
    main()
