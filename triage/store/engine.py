"""The database connection: one :class:`Store` per process, sessions per unit of work.

SQLite is the embedded default (a file under ``var/``), PostgreSQL is what a
deployment with several service workers uses (``TRIAGE_DATABASE_URL``, which the
entry points resolve and pass in: this module reads no environment). The
two behave differently under concurrency, so this module smooths the one
difference that matters for correctness: SQLite transactions start with
``BEGIN IMMEDIATE`` so a read-then-write unit of work takes the write lock up
front instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import fcntl
import os
import select
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, exc, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_SQLITE_PATH = Path("var") / "triage.db"


def database_url(url: str | None = None, var_dir: str | Path | None = None) -> str:
    """The URL to use: the one given (``TRIAGE_DATABASE_URL``, resolved by the entry point),
    else the SQLite file ``triage.db`` in the runtime folder (``var/`` by default)."""
    if url:
        return url
    path = Path(var_dir) / "triage.db" if var_dir else DEFAULT_SQLITE_PATH
    return f"sqlite:///{path}"


BUSY_TIMEOUT_S = 30.0


class WriteGate:
    """SQLite writers of one database file take turns in a queue, not by sleeping and retrying.

    A writer that finds SQLite's write lock taken sleeps in SQLite's busy handler
    (1, 2, 5 … then 100 ms between tries); under a steady stream of short write
    transactions such a waiter keeps missing the free moment while newcomers take
    it, for seconds (issue 15 measured a 6.5 s p99 at 4 clients). So before
    ``BEGIN IMMEDIATE`` a writer waits on this gate: threads of one process on a
    lock, processes (gunicorn workers) on an ``flock`` of ``<database>-writer.lock``,
    checked every few milliseconds. The gate is released when the transaction
    ends (commit, rollback or close of the DB-API connection). A writer that
    cannot pass within the busy timeout goes ahead ungated and SQLite decides, as before.
    """

    def __init__(self, db_path: str, timeout: float = BUSY_TIMEOUT_S) -> None:
        self.lock_path = db_path + "-writer.lock"
        self.timeout = timeout
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> bool:
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            return False
        pause = 0.0002
        try:
            fd = self._file()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
        except OSError:
            pass
        self._threads.release()
        return False

    def release(self) -> None:
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_GATES: dict[str, WriteGate] = {}
_GATES_LOCK = threading.Lock()


def write_gate(db_path: str) -> WriteGate:
    """The one gate of a database file in this process (engines on one file share it)."""
    key = os.path.abspath(db_path)
    with _GATES_LOCK:
        return _GATES.setdefault(key, WriteGate(key))


class GatedConnection(sqlite3.Connection):
    """A DB-API connection that lets its write gate go when its transaction ends."""

    gate: WriteGate | None = None

    def _let_go(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()


def _enter_wal(cursor: sqlite3.Cursor) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another process holds the file's lock.

    A new file is still in rollback mode when the second gunicorn worker's first connection
    arrives while the first worker migrates it. The switch then needs a lock the migrating
    writer holds, and SQLite answers "database is locked" at once rather than wait on the busy
    timeout (waiting could deadlock: this connection holds a read lock the writer needs
    released). Retrying with nothing held lets the writer finish; the file is WAL after that.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _prepare_sqlite(engine: Engine, gate: WriteGate | None = None) -> None:
    """WAL + foreign keys + a busy timeout on every connection; writers lock at BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        _enter_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - trivial
        readonly = conn.get_execution_options().get("triage_readonly")
        if readonly:
            conn.exec_driver_sql("BEGIN")
            return
        dbapi = conn.connection.dbapi_connection
        if gate is not None and isinstance(dbapi, GatedConnection) and dbapi.gate is None and gate.acquire():
            dbapi.gate = gate
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if isinstance(dbapi, GatedConnection):
                dbapi._let_go()
            raise


def make_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for ``url``; ``schema`` (PostgreSQL only) isolates a test session's tables."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        on_disk = bool(path) and path != ":memory:" and "mode=memory" not in url
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S, "factory": GatedConnection})
        _prepare_sqlite(engine, write_gate(path) if on_disk else None)
        return engine
    kwargs = {"pool_size": 10, "max_overflow": 20}
    if schema:
        kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
    engine = create_engine(url, **kwargs)
    _ping_when_in_doubt(engine)
    return engine


# A pooled connection idle at least this long is pinged before use (a firewall or a server's
# idle timeout may have dropped it without a word); one reused sooner only when its socket says so.
PING_AFTER_IDLE_S = 10.0


def _ping_when_in_doubt(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection before use only when it may be dead, not every time.

    ``pool_pre_ping`` sends ``SELECT 1`` on every check-out: a round trip and a statement in
    the server, over half of a short read transaction's cost (intake checks out two or three
    per ticket). A connection the server closed (a restart, ``pg_terminate_backend``, a crash)
    has its socket readable (the server's goodbye, or end of file): that costs one ``select()``
    to see. So a connection is pinged when its socket is readable (an idle connection has
    nothing to read) or it sat idle ``PING_AFTER_IDLE_S``; a failed ping invalidates the pool,
    as ``pool_pre_ping`` does, and the check-out goes on with a new connection.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record):
        record.info["triage_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("triage_idle_since", None)
        if idle_since is None:
            return  # just connected (or first use): nothing to doubt
        if time.monotonic() - idle_since < PING_AFTER_IDLE_S and not _readable(dbapi_connection):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:  # the database went away (restarted?)
            raise exc.InvalidatePoolError(f"a pooled connection failed its ping: {err}") from err


def _readable(dbapi_connection) -> bool:
    """Has the server sent anything (or closed) on this idle connection? Yes means in doubt."""
    try:
        fd = dbapi_connection.fileno()
        return bool(select.select([fd], [], [], 0)[0])
    except Exception:  # noqa: BLE001 - closed, or no socket to look at: in doubt
        return True


class Store:
    """The database behind the ticketing core.

    ``Store(url)`` connects; ``upgrade()`` brings the schema to the latest
    migration; ``session()`` is a unit of work that commits on success and
    rolls back on error. Repositories (``triage.store.tickets`` and friends)
    are plain functions taking a session, so a caller composes several of
    them in one transaction.
    """

    def __init__(self, url: str | None = None, *, schema: str | None = None) -> None:
        self.url = database_url(url)
        self.schema = schema
        self.engine = make_engine(self.url, schema)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._committer = None
        self._committer_lock = threading.Lock()

    @property
    def committer(self):
        """This process's :class:`~triage.store.group.GroupCommitter` for this database."""
        if self._committer is None:
            from triage.store.group import GroupCommitter

            with self._committer_lock:
                if self._committer is None:
                    self._committer = GroupCommitter(self._sessions)
        return self._committer

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: commit when the block ends, roll back if it raises.

        ``readonly`` (SQLite) skips the up-front write lock so readers run beside
        a writer under WAL; writing in such a session may then fail with "locked".
        """
        session = self._sessions()
        if readonly:
            session.connection(execution_options={"triage_readonly": True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (idempotent)."""
        from triage.store.migrate import upgrade

        upgrade(self.engine, revision)

    def create_all(self) -> None:
        """Create tables straight from the metadata (tests comparing against migrations)."""
        from triage.store.tables import Base

        Base.metadata.create_all(self.engine)

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def dispose(self) -> None:
        from triage.store import similar  # here: similar imports the store's modules

        similar.forget(self.engine)  # a background index load must not hold a connection past this
        self.engine.dispose()
