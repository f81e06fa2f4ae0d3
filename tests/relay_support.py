"""A real SMTP relay for tests: aiosmtpd on a free loopback port, around a handler of the test's."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import Iterator

from aiosmtpd.controller import Controller


@contextmanager
def running_relay(handler) -> Iterator[int]:
    """``handler`` (an aiosmtpd handler: ``async handle_DATA``) served on loopback; yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
