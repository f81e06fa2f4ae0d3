"""Admin overrides of the model's decisions: who changed what, when, and the policy in force.

An admin who sees a class misbehave must be able to stop the model from acting on
it *now*, without retraining: raise a class's apply threshold, or set a whole head
to ``suggest_only`` or ``off``. Each change is one append-only row (head, class or
``None`` for the head's mode, old value, new value, who, when, why), and the
effective policy is the fold of those rows, newest last. Nothing is overwritten,
so the confidence report can show the history and a bad change can be undone by
the next one.

The policy has the shape :meth:`triage.predict.Triager.classify` takes::

    {head: {"mode": "auto"|"suggest_only"|"off", "classes": {label: {"apply": p, "suggest": p}}}}

Every service worker reads it from the database before classifying. A cache keyed
by the newest change id (one indexed ``max(id)`` per call) keeps that cheap while
a change made through any worker is seen by every worker on its next
classification. The service asks for that id through :class:`VersionProbe`: the same
query, without a pooled connection, transaction or ORM around it.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from datetime import datetime
from typing import Any, Callable, Mapping

from sqlalchemy import Connection, Engine, Index, String, Text, event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.store.tables import Base, utcnow

MODES = ("auto", "suggest_only", "off")
THRESHOLD_KEYS = ("apply", "suggest")


class PolicyChange(Base):
    """One admin change: a head's mode (``label`` NULL) or one class's thresholds."""

    __tablename__ = "policy_changes"
    __table_args__ = (Index("ix_policy_changes_head", "head", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    head: Mapped[str] = mapped_column(String(100))
    label: Mapped[str | None] = mapped_column(String(200))
    old: Mapped[str | None] = mapped_column(Text)  # JSON of the previous setting (None = bundle's)
    new: Mapped[str | None] = mapped_column(Text)  # JSON of the new setting (None = back to bundle)
    bundle_id: Mapped[str | None] = mapped_column(String(200))
    by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# ----------------------------------------------------------------- validation (pure)
def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    return str(mode)


def check_thresholds(values: Mapping[str, Any]) -> dict[str, float | None]:
    """``{"apply": p|None, "suggest": p|None}``; p may exceed 1 (= never), not be negative."""
    out: dict[str, float | None] = {}
    for key in THRESHOLD_KEYS:
        raw = values.get(key)
        if raw is None or raw == "":
            out[key] = None
            continue
        try:
            p = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected a probability like 0.9, got {raw!r}") from None
        if not 0.0 <= p <= 1.01 or p != p:
            raise ValueError(f"{key}: expected a number from 0 to 1 (1.01 = never), got {raw!r}")
        out[key] = p
    return out


def fold(changes: list[tuple[str, str | None, Any]]) -> dict[str, dict[str, Any]]:
    """The effective policy from (head, label, new value) in order; later rows win."""
    policy: dict[str, dict[str, Any]] = {}
    for head, label, new in changes:
        entry = policy.setdefault(head, {"mode": "auto", "classes": {}})
        if label is None:
            entry["mode"] = (new or {}).get("mode", "auto") if isinstance(new, dict) else "auto"
        elif new is None:
            entry["classes"].pop(label, None)
        else:
            entry["classes"][label] = {k: new.get(k) for k in THRESHOLD_KEYS}
    return {h: e for h, e in policy.items() if e["mode"] != "auto" or e["classes"]}


# ----------------------------------------------------------------- writing
def set_mode(
    session: Session,
    head: str,
    mode: str,
    *,
    by: str,
    bundle_id: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> PolicyChange:
    """Record a head's mode; ``auto`` is the bundle's own behaviour."""
    mode = check_mode(mode)
    old = effective(session).get(head, {}).get("mode", "auto")
    return _record(session, head, None, {"mode": old}, {"mode": mode}, by, bundle_id, note, now)


def set_class(
    session: Session,
    head: str,
    label: str,
    thresholds: Mapping[str, Any] | None,
    *,
    by: str,
    bundle_id: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> PolicyChange:
    """Record a class's thresholds; ``None`` goes back to the bundle's thresholds."""
    new = None if thresholds is None else check_thresholds(thresholds)
    old = effective(session).get(head, {}).get("classes", {}).get(label)
    return _record(session, head, str(label), old, new, by, bundle_id, note, now)


def _record(
    session: Session,
    head: str,
    label: str | None,
    old: Any,
    new: Any,
    by: str,
    bundle_id: str | None,
    note: str | None,
    now: datetime | None,
) -> PolicyChange:
    row = PolicyChange(
        head=str(head),
        label=label,
        old=_dump(old),
        new=_dump(new),
        bundle_id=bundle_id,
        by=str(by),
        note=note or None,
        at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _load(value: str | None) -> Any:
    return None if value is None else json.loads(value)


# ----------------------------------------------------------------- reading
def version(session: Session | Connection) -> int:
    """The newest change id (0 = none): what the workers' caches compare."""
    return int(session.scalar(_VERSION) or 0)


_VERSION = select(func.max(PolicyChange.id))  # built once: asked before every classification


def effective(session: Session | Connection) -> dict[str, dict[str, Any]]:
    """The policy in force now (heads without any override are left out)."""
    rows = session.execute(
        select(PolicyChange.head, PolicyChange.label, PolicyChange.new).order_by(PolicyChange.id)
    )
    return fold([(h, lbl, _load(new)) for h, lbl, new in rows])


def history(session: Session, head: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Changes newest first, for the report's audit table."""
    stmt = select(PolicyChange).order_by(PolicyChange.id.desc()).limit(limit)
    if head is not None:
        stmt = stmt.where(PolicyChange.head == head)
    return [
        {
            "id": c.id,
            "head": c.head,
            "label": c.label,
            "old": _load(c.old),
            "new": _load(c.new),
            "by": c.by,
            "bundle_id": c.bundle_id,
            "note": c.note,
            "at": c.at.isoformat(),
        }
        for c in session.scalars(stmt)
    ]


class PolicyCache:
    """The effective policy, re-read only when the newest change id moved.

    One instance per process (or per app); thread-safe. ``current(session)``
    costs one ``max(id)`` query when nothing changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = -1
        self._policy: dict[str, dict[str, Any]] = {}

    def current(self, session: Session | Connection) -> dict[str, dict[str, Any]]:
        return self.at(version(session), lambda: effective(session))

    def at(self, seen: int, read: Callable[[], dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """The policy of change id ``seen``: the cached one, or ``read()`` when the id moved."""
        with self._lock:
            if seen == self._version:
                return self._policy
        policy = read()
        with self._lock:
            self._version, self._policy = seen, policy
        return policy

    @property
    def last(self) -> dict[str, dict[str, Any]]:
        """The last policy read (used when the database cannot be asked)."""
        return self._policy


_CACHES: dict[str, PolicyCache] = {}


def current(session: Session) -> dict[str, dict[str, Any]]:
    """The policy in force, cached per database (intake calls this before classifying)."""
    key = str(session.get_bind().url)
    cache = _CACHES.get(key)
    if cache is None:
        cache = _CACHES.setdefault(key, PolicyCache())
    return cache.current(session)


class VersionProbe:
    """:func:`version` for one engine, read the cheapest way that still asks the database.

    It runs before every classification, so an admin's change made through any worker or
    process is seen on the next one. Through the engine it cost a pool check-out, a BEGIN,
    the ORM's statement compilation and a ROLLBACK around one indexed ``max(id)``: several
    times the query. Here each thread keeps a DB-API connection of its own, detached from
    the engine's pool, in autocommit: the query is its own statement-level snapshot and so
    sees every change committed before it started, as the transaction did. The connections
    are closed when the engine is disposed (and never reused across a fork), and a thread's
    connection is closed once that thread has ended, when the next one is opened: a process
    whose threads come and go (a test client, a thread per job) holds at most one connection
    per live thread, not one per thread it ever ran.
    """

    SQL = f"SELECT max(id) FROM {PolicyChange.__tablename__}"

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._opened: list[tuple[threading.Thread, Any]] = []  # (owner thread, connection)
        self._lock = threading.Lock()
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def version(self) -> int:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._open()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(self.SQL)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except Exception:
            self._local.conn = None  # a broken connection (server restart): a new one next time
            self._discard(conn)
            raise
        return int(row[0] or 0)

    def _open(self) -> Any:
        engine = self._engine()
        if engine is None:
            raise RuntimeError("the engine of this policy probe is gone")
        proxied = engine.raw_connection()  # the engine's connect events (pragmas, search_path) ran
        proxied.detach()  # ours until closed: the pool neither counts nor resets it
        conn = proxied.dbapi_connection
        if self._sqlite:
            conn.isolation_level = None  # no implicit BEGIN: each statement reads the newest commit
        else:
            conn.rollback()  # (a pre-ping may have opened a transaction)
            conn.autocommit = True
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            ended = [c for thread, c in self._opened if not thread.is_alive()]
            self._opened = [(thread, c) for thread, c in self._opened if thread.is_alive()]
            self._opened.append((threading.current_thread(), conn))
        for old in ended:
            _close_quietly(old)
        return conn

    def _discard(self, conn: Any) -> None:
        with self._lock:
            self._opened = [(thread, c) for thread, c in self._opened if c is not conn]
        _close_quietly(conn)

    def close(self) -> None:
        """Close every thread's connection (this process's); a later call opens new ones."""
        with self._lock:
            opened, self._opened = self._opened, []
        self._local = threading.local()
        for _thread, conn in opened:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - broken, or closing at dispose: nothing left to do
        pass


_PROBES: "weakref.WeakKeyDictionary[Engine, VersionProbe]" = weakref.WeakKeyDictionary()
_PROBES_LOCK = threading.Lock()


def probe(engine: Engine) -> VersionProbe:
    """The engine's :class:`VersionProbe` (one per engine and process)."""
    found = _PROBES.get(engine)
    if found is None:
        with _PROBES_LOCK:
            found = _PROBES.get(engine)
            if found is None:
                found = _PROBES[engine] = VersionProbe(engine)
    return found
