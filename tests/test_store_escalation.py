"""Escalation sweep (exactly once per level) and signed webhook delivery with retries."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from triage.rules import RuleSet
from triage.store import clocks, tickets, webhooks
from triage.store.intake import intake
from triage.store.tables import Escalation, OutboxMessage

UTC = timezone.utc
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # a Sunday: the vip policy runs 24x7
RULES = RuleSet.load()


def p1_vip(session):
    payload = {
        "subject": "all down",
        "requester": "ceo@x.io",
        "category": "Network",
        "priority": 1,
        "affected_service": "vpn",
        "customer_tier": "vip",
        "team": "Net",
    }
    return intake(session, payload, actor="ceo@x.io", ruleset=RULES, now=NOW, auto_assign=False).ticket


def fired_levels(store):
    with store.session() as s:
        return sorted((e.ticket_id, e.clock, e.level, e.name) for e in s.query(Escalation))


def test_each_level_fires_once_across_repeated_sweeps(store):
    # vip P1: first response 15 minutes; levels warn 0.75, escalate 1.0, manager 1.5
    with store.session() as s:
        t = p1_vip(s)
    assert _sweep(store, NOW + timedelta(minutes=5)) == []
    assert _sweep(store, NOW + timedelta(minutes=12)) == [(t.id, "first_response", 1, "warn")]
    assert _sweep(store, NOW + timedelta(minutes=12)) == []
    assert _sweep(store, NOW + timedelta(minutes=30)) == [
        (t.id, "first_response", 2, "escalate"),
        (t.id, "first_response", 3, "manager"),
    ]
    for _ in range(3):
        assert _sweep(store, NOW + timedelta(minutes=45)) == []
    assert len(fired_levels(store)) == 3
    with store.session() as s:
        ticket = tickets.get(s, t.id)
        assert ticket.escalation_level == 3
        assert [e.new for e in tickets.history(s, t.id) if e.field.startswith("escalation")] == [
            "1:warn",
            "2:escalate",
            "3:manager",
        ]


def _sweep(store, when):
    with store.session() as s:
        return [(f.ticket_id, f.clock, f.level, f.name) for f in clocks.sweep(s, when)]


def test_paused_and_stopped_clocks_do_not_escalate(store):
    with store.session() as s:
        t = p1_vip(s)
        tickets.add_comment(s, t, author="bob", body="on it", by_agent=True, now=NOW + timedelta(minutes=5))
    assert [f for f in _sweep(store, NOW + timedelta(minutes=40)) if f[1] == "first_response"] == []


def test_concurrent_sweeps_fire_each_level_once(store):
    with store.session() as s:
        ids = [p1_vip(s).id for _ in range(5)]
    when = NOW + timedelta(minutes=20)
    results, errors = [], []

    def worker():
        try:
            results.extend(_sweep(store, when))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    expected = sorted((i, "first_response", lv, n) for i in ids for lv, n in ((1, "warn"), (2, "escalate")))
    assert sorted(results) == expected == [f for f in fired_levels(store)]


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Fails the first ``fail`` requests with 503, then answers 204; keeps what it got."""

    fail = 0
    got: list = []

    def do_POST(self):  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((dict(self.headers), body))
        if type(self).fail > 0:
            type(self).fail -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.got, _Receiver.fail = [], 2
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(60)
def test_escalation_webhooks_are_signed_and_retried_with_backoff(store, receiver):
    url, handler = receiver
    with store.session() as s:
        webhooks.register(s, url, "s3cret", ["ticket.escalated"])
        p1_vip(s)
    _sweep(store, NOW + timedelta(minutes=12))  # one level -> one message
    clock = [NOW + timedelta(minutes=13)]
    results = []
    for _ in range(3):  # 503, 503, 204: each retry after the backoff has passed
        results.append(webhooks.deliver(store, now=lambda: clock[0], timeout=5, allow="127.0.0.1"))
        clock[0] += timedelta(seconds=webhooks.BASE_DELAY * 4 + 61)
    assert results == [
        {"sent": 0, "retry": 1, "failed": 0},
        {"sent": 0, "retry": 1, "failed": 0},
        {"sent": 1, "retry": 0, "failed": 0},
    ]
    assert webhooks.deliver(store, now=lambda: clock[0], allow="127.0.0.1") == {
        "sent": 0,
        "retry": 0,
        "failed": 0,
    }
    headers, body = handler.got[-1]
    stamp_now = datetime.fromtimestamp(int(headers["X-Triage-Timestamp"]), UTC)
    assert webhooks.verify("s3cret", headers, body, now=stamp_now)
    assert not webhooks.verify("wrong", headers, body, now=stamp_now)
    assert not webhooks.verify("s3cret", headers, body + b" ", now=stamp_now)
    assert not webhooks.verify("s3cret", headers, body, now=stamp_now + timedelta(hours=1))
    assert json.loads(body)["data"]["name"] == "warn"
    with store.session() as s:
        message = s.query(OutboxMessage).filter_by(kind="webhook").one()
        assert message.attempts == 3 and message.delivered_at is not None


def test_a_message_is_not_retried_before_its_backoff(store):
    calls = []

    def post(url, body, headers, timeout):
        calls.append(url)
        raise ConnectionRefusedError("nobody home")

    with store.session() as s:
        webhooks.register(s, "http://127.0.0.1:9/", "k")
        p1_vip(s)
    _sweep(store, NOW + timedelta(minutes=12))
    t0 = NOW + timedelta(minutes=13)
    assert webhooks.deliver(store, now=lambda: t0, post=post)["retry"] == 1
    assert webhooks.deliver(store, now=lambda: t0 + timedelta(seconds=1), post=post)["retry"] == 0
    with store.session() as s:
        msg = s.query(OutboxMessage).filter_by(kind="webhook").one()
        assert "ConnectionRefusedError" in msg.last_error
        assert msg.next_attempt_at == t0 + webhooks.backoff(1)


def test_backoff_grows_and_is_capped():
    delays = [webhooks.backoff(n).total_seconds() for n in range(1, 20)]
    assert delays[:3] == [2, 4, 8] and max(delays) == webhooks.MAX_DELAY


def test_sweep_all_works_through_batches(store):
    with store.session() as s:
        ids = {p1_vip(s).id for _ in range(7)}
    fired = clocks.sweep_all(store, NOW + timedelta(minutes=12), limit=3)
    assert {f.ticket_id for f in fired} == ids and len(fired) == 7
    assert clocks.sweep_all(store, NOW + timedelta(minutes=12), limit=3) == []
