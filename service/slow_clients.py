"""A deadline on reading the request body, and the client address behind a proxy.

A worker thread that reads a body reads it at the client's pace: four clients
sending one byte every two seconds held every thread of the default server and
``/livez`` stopped answering. The real defence is a buffering proxy in front
(``deploy/nginx.conf``: it hands gunicorn only complete requests). This is the
second line, for a server reached directly: a body must arrive within
``TRIAGE_BODY_TIMEOUT`` seconds in total, else the request ends with 408 and the
connection is closed, so one slow client holds a thread for a bounded time.

``TRIAGE_PROXY_HOPS`` tells how many proxies stand in front: their
``X-Forwarded-For``/``-Proto`` are then believed (werkzeug's ProxyFix), so rate
limits count the client and not the proxy. Without a proxy it must stay 0, or
any client could claim any address.
"""

from __future__ import annotations

import socket
import time

from werkzeug.exceptions import RequestTimeout
from werkzeug.middleware.proxy_fix import ProxyFix


class _DeadlineInput:
    """``wsgi.input`` whose reads must all finish before one deadline."""

    def __init__(self, stream, deadline: float, sock: socket.socket | None) -> None:
        self._stream = stream
        self._deadline = deadline
        self._sock = sock

    def _guard(self, call, *args):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._give_up()
        previous = None
        if self._sock is not None:
            previous = self._sock.gettimeout()
            self._sock.settimeout(remaining)
        try:
            return call(*args)
        except (socket.timeout, TimeoutError):
            self._give_up()
        finally:
            if self._sock is not None:
                try:
                    self._sock.settimeout(previous)
                except OSError:
                    pass

    def _give_up(self):
        if self._sock is not None:
            try:  # nothing more is read from this client: the connection ends after the 408
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        raise RequestTimeout("the request body did not arrive in time")

    def read(self, *args):
        return self._guard(self._stream.read, *args)

    def readline(self, *args):
        return self._guard(self._stream.readline, *args)

    def readlines(self, *args):
        return self._guard(self._stream.readlines, *args)

    def __iter__(self):
        return iter(self.readline, b"")


class BodyDeadline:
    """WSGI middleware: bodies must be read within ``seconds`` of the request's start."""

    def __init__(self, app, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ, start_response):
        stream = environ.get("wsgi.input")
        has_body = (
            environ.get("CONTENT_LENGTH") not in (None, "", "0")
            or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        )
        if self.seconds > 0 and stream is not None and has_body:
            environ["wsgi.input"] = _DeadlineInput(
                stream, time.monotonic() + self.seconds, environ.get("gunicorn.socket")
            )
        return self.app(environ, start_response)


def init_app(app) -> None:
    """Wrap the WSGI app: proxy headers first (outermost), then the body deadline."""
    app.wsgi_app = BodyDeadline(app.wsgi_app, float(app.config.get("TRIAGE_BODY_TIMEOUT") or 0))
    hops = int(app.config.get("TRIAGE_PROXY_HOPS") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)
