"""gunicorn's ``gthread`` worker, leaving a new connection to a worker that holds fewer.

Every worker waits on the one listening socket and the first to wake takes the connection.
A keep-alive client then stays on that worker, so two clients land on one worker about
half the time (bench/bench_service.py --fast-only prints each worker's share of the CPU):
that worker's two request threads take turns on one GIL while the other worker and its
core idle, and the requests' latency doubles.

Here each worker writes how many connections it holds into a table shared by the workers
(an anonymous shared mapping made in the master, inherited by every fork). A worker woken
by a new connection takes it at once when no other accepting worker holds fewer (so when
all hold as many, as with clients that close after every request, nobody waits); otherwise
it steps aside until every worker holding fewer has looked at the connection (each counts
its looks in the table; the one holding fewest takes it), and takes it itself if it is still
there after ``TRIAGE_ACCEPT_DELAY_MS`` (default 20) per connection it holds beyond the
fewest, at most ``threads`` times: a worker not scheduled in time, or stuck. Stepping aside
takes the listening socket off this worker's poller (it looks again every millisecond); the
main thread goes on serving its connections meanwhile (it does not sleep).
``TRIAGE_ACCEPT_DELAY_MS=0`` is plain gthread.

A connection whose client has closed it no longer counts, here or in the table, from the
moment this worker's loop sees it readable at end of file: a client that drops its
connections and opens new ones at once (the bench between rows, a pool being recycled) would
otherwise find the worker that held the old ones still counting them.
"""

from __future__ import annotations

import mmap
import os
import select
import selectors
import socket
import time

from gunicorn.workers.gthread import ThreadWorker

from triage.procs import pid_alive  # not from service.run_dir: see triage/procs.py

# While stepping aside, how often a worker looks whether the connection was taken elsewhere.
LOOK_AGAIN_S = 0.001
SLOTS = 64  # workers of one server at once (live ones only: a dead worker's slot is reused)
FIELDS = 3  # per slot: pid (0: free or not accepting), connections held, times it looked


class WorkerTable:
    """Each accepting worker's pid and connection count, in memory shared across forks.

    Written one aligned 32-bit cell at a time (``struct.pack_into`` zero-fills its bytes
    first, and a reader in the other process could see a pid of 0 meanwhile).
    """

    def __init__(self, slots: int = SLOTS) -> None:
        self.slots = slots
        self.memory = mmap.mmap(-1, slots * FIELDS * 4)  # MAP_SHARED | MAP_ANONYMOUS
        self.cells = memoryview(self.memory).cast("i")

    def claim(self, start: int) -> int:
        """A slot for this process: the first from ``start`` that is free or whose worker died."""
        me = os.getpid()
        for step in range(self.slots):
            slot = (start + step) % self.slots
            pid, _, _ = self.read(slot)
            if pid in (0, me) or not pid_alive(pid):
                self.write(slot, me, 0)
                return slot
        raise RuntimeError(f"more than {self.slots} gunicorn workers share one worker table")

    def read(self, slot: int) -> tuple[int, int, int]:
        at = slot * FIELDS
        return self.cells[at], self.cells[at + 1], self.cells[at + 2]

    def write(self, slot: int, pid: int, held: int, looked: int = 0) -> None:
        at = slot * FIELDS
        self.cells[at + 1], self.cells[at + 2] = held, looked % 2**31
        self.cells[at] = pid

    def others(self, mine: int) -> dict[int, tuple[int, int]]:
        """Slot → (connections held, times looked) of every other live, accepting worker."""
        found = {}
        for slot in range(self.slots):
            if slot != mine:
                pid, held, looked = self.read(slot)
                if pid and pid_alive(pid):
                    found[slot] = (held, looked)
        return found


# Made when gunicorn_conf.py loads this module in the master, before it forks any worker.
TABLE = WorkerTable()


class BalancedThreadWorker(ThreadWorker):
    def init_process(self):
        self.accept_delay = accept_delay()
        self.table, self.slot = TABLE, None
        self.looked = 0  # times this worker looked at a waiting connection (told to the others)
        self.resume_accept_at = 0.0  # stepping aside until then at the latest (listeners off the poller)
        self.waiting_for: dict[int, int] = {}  # slot → its ``looked`` when this worker stepped aside
        self.in_pool: set = set()  # connections handed to request threads
        self.closing: set = set()  # held connections their client has closed
        super().init_process()

    # -- what this worker holds, and what it tells the others
    def held_connections(self) -> int:
        """Connections held, less those their client has closed.

        A client's close reaches this worker as a readable socket that the loop reaps a
        moment later (through a request thread). Peeking is one non-blocking ``recv`` per
        idle keep-alive or in-flight connection, and only when a connection is waiting.
        """
        for conn in (*self.keepalived_conns, *self.pending_conns, *self.in_pool):
            if conn not in self.closing and _closed_by_client(conn.sock):
                self.closing.add(conn)
        return self.nr_conns - len(self.closing)

    def publish(self) -> None:
        if self.closing:  # (a closed one that timed out was dropped without a request thread)
            self.closing.intersection_update({*self.keepalived_conns, *self.pending_conns, *self.in_pool})
        if self.slot is not None:
            held = max(self.nr_conns - len(self.closing), 0)
            self.table.write(self.slot, os.getpid() if self._accepting else 0, held, self.looked)

    def set_accept_enabled(self, enabled):
        if self.accept_delay > 0 and self.slot is None and enabled:
            self.slot = self.table.claim(self.age)
        if self.resume_accept_at:  # stepping aside: the listeners are off the poller already
            self._accepting = enabled
        else:
            super().set_accept_enabled(enabled)
        self.publish()

    # -- the late accept
    def accept(self, listener):
        if self.accept_delay <= 0 or self.slot is None:
            return super().accept(listener)
        self.looked += 1
        mine = self.held_connections()
        self.publish()
        others = self.table.others(self.slot)  # one read: the others change it meanwhile
        fewer = {slot: seen for slot, (held, seen) in others.items() if held < mine}
        if not fewer:
            return self.accept_now(listener)
        beyond = mine - min(held for held, _ in others.values())
        self.step_aside(fewer, min(beyond, self.cfg.threads) * self.accept_delay)

    def accept_now(self, listener):
        super().accept(listener)
        self.publish()

    def step_aside(self, fewer: dict[int, int], seconds: float) -> None:
        """Leave the waiting connection to the workers holding fewer until each has looked at
        it (woken by it, as this one was), ``seconds`` at most."""
        for listener in self.sockets:
            self.poller.unregister(listener)
        self.waiting_for = fewer
        self.resume_accept_at = time.monotonic() + seconds

    def look_again(self) -> None:
        """While stepping aside: back on the poller (the next connection decided afresh) once
        the connection is taken elsewhere or every worker holding fewer has looked at it;
        take it when the time is up."""
        waiting = [listener for listener in self.sockets if _readable(listener)]
        expired = time.monotonic() >= self.resume_accept_at
        if waiting and not expired:
            others = self.table.others(self.slot)
            if any(slot in others and others[slot][1] == seen for slot, seen in self.waiting_for.items()):
                return  # a worker holding fewer has not been scheduled since
        self.resume_accept_at, self.waiting_for = 0.0, {}
        if not (self._accepting and self.alive):
            self._accepting = False  # (registered again by set_accept_enabled(True))
            return
        for listener in self.sockets:
            self.poller.register(listener, selectors.EVENT_READ, self.accept)
        if expired:
            for listener in waiting:
                self.accept_now(listener)  # non-blocking: EAGAIN when another worker took it

    def wait_for_and_dispatch_events(self, timeout):
        if self.resume_accept_at:
            timeout = max(0.0, min(timeout, LOOK_AGAIN_S, self.resume_accept_at - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)
        if self.resume_accept_at:
            self.look_again()
        self.publish()

    # -- connections coming and going
    def enqueue_req(self, conn):
        self.in_pool.add(conn)
        super().enqueue_req(conn)

    def on_client_socket_readable(self, conn, client):
        if self.accept_delay > 0 and _closed_by_client(conn.sock):
            self.closing.add(conn)  # the others see it gone at the end of this loop turn
        super().on_client_socket_readable(conn, client)

    def finish_request(self, conn, fs):
        self.in_pool.discard(conn)
        self.closing.discard(conn)
        super().finish_request(conn, fs)

    def run(self):
        try:
            super().run()
        finally:
            if self.slot is not None:
                self.table.write(self.slot, 0, 0)


def _readable(listener) -> bool:
    """A connection is waiting to be accepted."""
    return bool(select.select([listener], [], [], 0)[0])


def _closed_by_client(sock) -> bool:
    """True when the client has closed (or reset) the connection; False while open."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # open and quiet: a keep-alive client between requests
    except ValueError:
        return False  # a TLS socket takes no recv flags: counted, as plain gthread would
    except OSError:
        return True  # reset, or closed here already: as good as closed


def accept_delay() -> float:
    """The longest a worker steps aside per connection it holds beyond the fewest elsewhere."""
    return max(float(os.environ.get("TRIAGE_ACCEPT_DELAY_MS", "20") or 0), 0.0) / 1000
