"""Signed webhooks through an outbox (the same outbox carries mail: ``triage.store.outbound``).

A webhook is queued in the same transaction as the change that causes it
(an escalation), so a crash can neither lose it nor send one for a change
that rolled back. Delivery happens later, outside any transaction: claim due
messages, POST them, record the outcome; a failure is retried with
exponential backoff up to ``MAX_ATTEMPTS``.

Receivers verify ``X-Triage-Signature: sha256=<hex>``, the HMAC-SHA256 with
their secret of ``"<X-Triage-Timestamp>.<raw body>"`` (the timestamp inside
the signature stops replays); :func:`verify` is the reference check.

Targets are checked twice (``triage/egress.py``): the URL when it is
registered (http or https only), and the resolved address at every delivery
(no loopback, private, link-local or metadata address unless the allow-list
names it). Redirects are never followed.
"""

from __future__ import annotations

import hashlib
import http.client
import hmac
import json
import secrets
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import ARRAY, Integer, any_, bindparam, select, update
from sqlalchemy.orm import Session

from triage import egress
from triage.errors import InputError, NotFound
from triage.store import doorbell
from triage.store.tables import OutboxMessage, Webhook, utcnow

MAX_ATTEMPTS = 8
BASE_DELAY = 2.0  # seconds before the first retry; doubles each attempt
MAX_DELAY = 3600.0
LEASE = timedelta(seconds=60)  # a claimed message is invisible to other workers this long
SIGNATURE_HEADER = "X-Triage-Signature"
TIMESTAMP_HEADER = "X-Triage-Timestamp"

# what a delivery attempt may meet: network errors, a refused target, a broken HTTP answer
DELIVERY_ERRORS = (OSError, ValueError, http.client.HTTPException)
Poster = Callable[[str, bytes, dict[str, str], float], int]


def register(
    session: Session, url: str, secret: str | None = None, events: list[str] | None = None
) -> Webhook:
    """A new active webhook; the URL must be http(s) (its address is checked at delivery).

    Without ``secret`` a random one is made: read it from the returned row once.
    """
    egress.check_url(url)
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) > 200 or "\x00" in secret:
        raise InputError(
            "webhook secret must be 1 to 200 characters without NUL",
            column="secret",
            expected="at most 200 characters",
            got=f"{len(secret)} characters",
        )
    events = list(events or [])
    for event in events:
        if not isinstance(event, str) or not event or len(event) > 100 or "\x00" in event:
            raise InputError(
                "event names are non-empty texts of at most 100 characters",
                column="events",
                expected="event name",
                got=event,
            )
    hook = Webhook(url=url, secret=secret, events=events, active=True)
    session.add(hook)
    session.flush()
    return hook


def listing(session: Session) -> list[dict[str, Any]]:
    """Every webhook without its secret, with its delivery counts."""
    hooks = session.scalars(select(Webhook).order_by(Webhook.id))
    return [describe(session, h) for h in hooks]


def describe(session: Session, hook: Webhook) -> dict[str, Any]:
    messages = list(session.scalars(select(OutboxMessage).where(OutboxMessage.webhook_id == hook.id)))
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events or []),
        "active": bool(hook.active),
        "delivered": sum(1 for m in messages if m.delivered_at is not None),
        "pending": sum(1 for m in messages if m.delivered_at is None and not m.failed),
        "failed": sum(1 for m in messages if m.failed),
    }


def get(session: Session, hook_id: int) -> Webhook:
    hook = session.get(Webhook, int(hook_id)) if 1 <= int(hook_id) <= 2**31 - 1 else None
    if hook is None:
        raise NotFound(f"webhook {hook_id} not found", webhook=hook_id)
    return hook


def disable(session: Session, hook_id: int) -> Webhook:
    """Stop queueing for this webhook (its history stays)."""
    hook = get(session, hook_id)
    hook.active = False
    return hook


def queue(
    session: Session, event: str, payload: dict[str, Any], now: datetime | None = None
) -> list[OutboxMessage]:
    """One outbox message per active webhook subscribed to ``event`` (empty list = all)."""
    now = now or utcnow()
    hooks = session.scalars(select(Webhook).where(Webhook.active.is_(True)))
    messages = [
        OutboxMessage(webhook_id=h.id, event=event, payload=payload, next_attempt_at=now, created_at=now)
        for h in hooks
        if not h.events or event in h.events
    ]
    if messages:
        doorbell.queued(session, "webhook")
    session.add_all(messages)
    return messages


def queue_many(
    session: Session, event: str, payloads: list[dict[str, Any]], now: datetime | None = None
) -> list[OutboxMessage]:
    """:func:`queue` for a batch (the webhooks are read once)."""
    if not payloads:
        return []
    now = now or utcnow()
    hooks = [
        h
        for h in session.scalars(select(Webhook).where(Webhook.active.is_(True)))
        if not h.events or event in h.events
    ]
    messages = [
        OutboxMessage(webhook_id=h.id, event=event, payload=p, next_attempt_at=now, created_at=now)
        for p in payloads
        for h in hooks
    ]
    if messages:
        doorbell.queued(session, "webhook")
    session.add_all(messages)
    return messages


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
    tolerance: timedelta = timedelta(minutes=5),
) -> bool:
    """A receiver's check: right signature, and a timestamp within ``tolerance`` of now."""
    lower = {k.lower(): v for k, v in headers.items()}
    stamp, given = lower.get(TIMESTAMP_HEADER.lower()), lower.get(SIGNATURE_HEADER.lower())
    if not stamp or not given:
        return False
    try:
        sent = datetime.fromtimestamp(int(stamp), tz=(now or utcnow()).tzinfo)
    except ValueError:
        return False
    if abs((now or utcnow()) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), given)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempts - 1)))


def envelope(
    secret: str, event: str, delivery: str, payload: dict, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """The signed body and headers of one delivery."""
    body = json.dumps({"event": event, "id": delivery, "data": payload}, sort_keys=True).encode()
    stamp = str(int(now.timestamp()))
    return body, {
        "Content-Type": "application/json",
        "X-Triage-Event": event,
        "X-Triage-Delivery": str(delivery),
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }


def send_test(
    session: Session,
    hook_id: int,
    *,
    allow: egress.AllowList | None = None,
    timeout: float = 5.0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Send one signed ``webhook.test`` now (not queued); the outcome, never raises on I/O."""
    hook = get(session, hook_id)
    body, headers = envelope(hook.secret, "webhook.test", "test", {"webhook_id": hook.id}, now or utcnow())
    try:
        status = egress.post(hook.url, body, headers, timeout, allow)
    except DELIVERY_ERRORS as exc:
        return {"ok": False, "status": None, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": 200 <= status < 300,
        "status": status,
        "error": None if 200 <= status < 300 else f"HTTP {status}",
    }


def claim(session: Session, now: datetime, limit: int = 50) -> list[tuple[int, str, str, str, dict]]:
    """Due messages, leased to this worker; returns plain data for delivery outside the tx.
    Two statements however many: the due rows, one UPDATE for their lease."""
    stmt = (
        select(OutboxMessage.id, Webhook.url, Webhook.secret, OutboxMessage.event, OutboxMessage.payload)
        .join(Webhook, Webhook.id == OutboxMessage.webhook_id)
        .where(
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed.is_(False),
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxMessage)
    )
    out = [
        (mid, url, secret, event, dict(payload)) for mid, url, secret, event, payload in session.execute(stmt)
    ]
    if out:
        session.execute(_LEASE, {"ids": [m[0] for m in out], "until": now + LEASE})
    return out


_LEASE = (
    update(OutboxMessage.__table__)
    .where(OutboxMessage.__table__.c.id.in_(bindparam("ids", expanding=True)))
    .values(next_attempt_at=bindparam("until"))
)
_DELIVERED = (
    update(OutboxMessage.__table__)
    .where(OutboxMessage.__table__.c.id.in_(bindparam("ids", expanding=True)))
    .values(attempts=OutboxMessage.__table__.c.attempts + 1, delivered_at=bindparam("at"), last_error=None)
)
# The same on PostgreSQL with the ids as one array: one SQL text whatever their number, so
# psycopg prepares it after a few rounds (each count of an expanded IN list is a new text).
_DELIVERED_ANY = (
    update(OutboxMessage.__table__)
    .where(OutboxMessage.__table__.c.id == any_(bindparam("ids", type_=ARRAY(Integer))))
    .values(attempts=OutboxMessage.__table__.c.attempts + 1, delivered_at=bindparam("at"), last_error=None)
)


_ATTEMPTS = select(OutboxMessage.id, OutboxMessage.attempts).where(
    OutboxMessage.id.in_(bindparam("ids", expanding=True))
)
_FAILED_ONCE = (
    update(OutboxMessage.__table__)
    .where(OutboxMessage.__table__.c.id == bindparam("row_id"))
    .values(
        attempts=bindparam("n"),
        last_error=bindparam("why"),
        failed=bindparam("gave_up"),
        next_attempt_at=bindparam("retry_at"),
    )
)


def record_outcomes(session: Session, done: list[tuple[int, str | None]], now: datetime) -> dict[str, int]:
    """Attempts of outbox messages (webhook or mail) as ``(id, error or None)``, in the
    caller's transaction: one UPDATE for every one delivered (attempts + 1, delivered_at,
    error cleared); the failures read once and written by one executemany, each retried
    later with backoff or, after ``MAX_ATTEMPTS``, marked failed. Returns counts of
    sent / retry / failed."""
    counts = {"sent": 0, "retry": 0, "failed": 0}
    sent = [message_id for message_id, error in done if error is None]
    if sent:
        session.execute(_DELIVERED, {"ids": sent, "at": now})
        counts["sent"] = len(sent)
    errors = {message_id: error for message_id, error in done if error is not None}
    if errors:
        rows = []
        for message_id, attempts in session.execute(_ATTEMPTS, {"ids": sorted(errors)}):
            n = attempts + 1
            rows.append(
                {
                    "row_id": message_id,
                    "n": n,
                    "why": (errors[message_id] or "failed")[:2000],
                    "gave_up": n >= MAX_ATTEMPTS,
                    "retry_at": now + backoff(n),
                }
            )
            counts["failed" if n >= MAX_ATTEMPTS else "retry"] += 1
        session.execute(_FAILED_ONCE, rows)
    return counts


# Outcomes recorded together, in one write transaction; a crash before they are recorded
# sends those messages again once their lease ends (delivered at least once; at most this
# many again). The mail outbox uses the same.
OUTCOMES_PER_TRANSACTION = 50
# ... or after this long, so a slow receiver's outcomes are recorded well within the lease.
OUTCOMES_EVERY = timedelta(seconds=5)


def deliver(
    store,
    *,
    now: Callable[[], datetime] = utcnow,
    post: Poster | None = None,
    timeout: float = 5.0,
    limit: int = 50,
    allow: egress.AllowList | str | None = None,
) -> dict[str, int]:
    """One delivery pass over due messages; returns counts of sent / retrying / failed.

    ``allow`` names the non-public hosts/networks webhooks may reach (tests, an
    internal receiver); everything else must resolve to public addresses. Outcomes are
    recorded together (:data:`OUTCOMES_PER_TRANSACTION`, :data:`OUTCOMES_EVERY`), not one
    transaction per delivery.
    """
    if not isinstance(allow, egress.AllowList):
        allow = egress.AllowList.parse(allow)
    post = post or (lambda url, body, headers, timeout: egress.post(url, body, headers, timeout, allow))
    with store.session() as session:
        recorded = now()
        batch = claim(session, recorded, limit)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    done: list[tuple[int, str | None]] = []
    for message_id, url, secret, event, payload in batch:
        body, headers = envelope(secret, event, message_id, payload, now())
        try:
            status = post(url, body, headers, timeout)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except DELIVERY_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
        done.append((message_id, error))
        if len(done) >= OUTCOMES_PER_TRANSACTION or now() - recorded > OUTCOMES_EVERY:
            recorded = now()
            _record(store, done, recorded, counts)
    if done:
        _record(store, done, now(), counts)
    return counts


def _record(store, done: list[tuple[int, str | None]], at: datetime, counts: dict[str, int]) -> None:
    if not record_all_sent(store, done, at, counts):
        with store.session() as session:
            for key, value in record_outcomes(session, done, at).items():
                counts[key] += value
    done.clear()


def record_all_sent(
    store,
    done: list[tuple[int, str | None]],
    at: datetime,
    counts: dict[str, int],
    then: tuple[Any, dict[str, Any]] | None = None,
) -> bool:
    """On PostgreSQL, outcomes that are all successes as one ``UPDATE`` outside a transaction
    (autocommit: the statement is atomic on its own), then ``then`` (a statement and its
    parameters, e.g. the lease let go) the same way; False, having written nothing, when
    that is not the case (a failure, or SQLite) and :func:`record_outcomes` must be used.

    One round trip where a transaction costs three (``BEGIN``, the ``UPDATE``, ``COMMIT``):
    a delivery round's outcome was a third of its round trips. Nothing is recorded later
    than before: the rows are marked delivered as soon as the same statement's commit would
    have, so the window in which a crash re-sends a delivered message does not grow.
    On SQLite a write outside ``BEGIN IMMEDIATE`` would bypass the store's write gate, and
    its transaction costs no round trip, so it keeps :func:`record_outcomes`."""
    if store.dialect != "postgresql" or any(error is not None for _, error in done):
        return False
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if done:
            conn.execute(_DELIVERED_ANY, {"ids": [message_id for message_id, _ in done], "at": at})
        if then is not None:
            conn.execute(*then)
    counts["sent"] += len(done)
    return True


def pending(session: Session, kind: str = "webhook") -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.kind == kind)
        .order_by(OutboxMessage.id)
    )
    return list(session.scalars(stmt))
