"""gunicorn's ``gthread`` worker, accepting a new connection later when it already holds some.

Every worker waits on the one listening socket and the first to wake takes the connection.
A keep-alive client then stays on that worker, so two clients land on one worker about
half the time (bench/bench_service.py --fast-only prints each worker's share of the CPU):
that worker's two request threads take turns on one GIL while the other worker and its
core idle, and the requests' latency doubles.

Here a worker already holding connections waits ``TRIAGE_ACCEPT_DELAY_MS`` per connection
(at most ``threads`` times) before it accepts, so a worker holding fewer takes the
connection first; the loser's ``accept`` finds nothing (EAGAIN) and goes on. When every
worker is as busy, the connection is taken after the delay by whichever wakes: nothing
waits longer than ``threads`` × the delay, and only when a connection is opened.
"""

from __future__ import annotations

import os
import socket
import time

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):
    def init_process(self):
        self.accept_delay = accept_delay()
        super().init_process()

    def accept(self, listener):
        held = min(self.held_connections(), self.cfg.threads) if self.accept_delay > 0 else 0
        if held > 0:
            # (the main thread sleeps, not a request thread: requests go on meanwhile)
            time.sleep(held * self.accept_delay)
        super().accept(listener)

    def held_connections(self) -> int:
        """Connections held, less the idle keep-alive ones their client has closed.

        A client's close reaches this worker as a readable socket that the loop reaps a
        moment later; a client that drops its connections and opens new ones (the bench
        between rows; a pool being recycled) would otherwise find this worker still
        counting the old ones, and the other worker taking both new ones. Peeking is one
        non-blocking ``recv`` per idle keep-alive connection, and only when accepting.
        """
        held = self.nr_conns
        for conn in self.keepalived_conns:
            try:
                if conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    held -= 1  # closed by the client
            except (BlockingIOError, InterruptedError):
                pass  # open and quiet: a keep-alive client between requests
            except ValueError:
                pass  # a TLS socket takes no recv flags: counted, as plain gthread would
            except OSError:
                held -= 1  # reset: as good as closed
        return held


def accept_delay() -> float:
    """Seconds a worker waits per connection it holds before accepting another."""
    return max(float(os.environ.get("TRIAGE_ACCEPT_DELAY_MS", "2") or 0), 0.0) / 1000
