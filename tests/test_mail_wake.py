"""Queued mail wakes the outbox's delivery loop (``triage.store.doorbell``) instead of
waiting for the next interval: at commit in the process that queued it, and through
a watcher's poll in the others (no NOTIFY: a notifying commit takes a database-wide lock).

Real stores, a real second process, the real app. Waits have generous limits and assert
only that the wake came (the loops here run every hour: without a wake nothing is sent).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import text

from triage.store import doorbell, webhooks
from triage.store.intake import intake

WAIT_S = 60.0  # a limit for a wake that must come, not a measurement


def test_a_commit_that_queued_mail_rings_the_bell_after_the_commit(store):
    bell = doorbell.Doorbell()
    with store.session() as s:
        intake(s, {"subject": "s", "body": "b", "requester": "cust@example.com"}, actor="x")
        s.flush()
        assert not bell.wait(0)  # not before the commit: the loop would find nothing
    assert bell.wait(0)
    assert not bell.wait(0)  # a wait unrings it


def test_a_rollback_or_a_commit_without_mail_rings_nothing(store):
    bell = doorbell.Doorbell()
    with pytest.raises(RuntimeError), store.session() as s:
        intake(s, {"subject": "s", "body": "b", "requester": "cust@example.com"}, actor="x")
        raise RuntimeError("rolled back")
    with store.session() as s:
        intake(s, {"subject": "s", "body": "b", "requester": "an-id-not-an-address"}, actor="x")
    assert not bell.wait(0)


def test_a_queued_webhook_rings_the_bell(store):
    with store.session() as s:
        webhooks.register(s, "https://hooks.example/x")
    bell = doorbell.Doorbell()
    with store.session() as s:
        assert webhooks.queue(s, "ticket.escalated", {"id": 1})
    assert bell.wait(0)


def _queue_in_another_process(store) -> None:
    """A ticket opened by a separate Python process (as the CLI or another worker does)."""
    code = textwrap.dedent(
        f"""
        from triage.store.engine import Store
        from triage.store.intake import intake
        store = Store({store.url!r}, schema={store.schema!r})
        with store.session() as s:
            intake(s, {{"subject": "s", "body": "b", "requester": "other@example.com"}}, actor="cli")
        store.dispose()
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_mail_queued_by_another_process_rings_the_watching_bell(store):
    bell = doorbell.Doorbell()
    thread = doorbell.watch(store, bell, 0.05)
    assert thread is not None
    try:
        _wait_for_quiet(bell)
        _queue_in_another_process(store)  # no commit of this process: no in-process ring
        assert _rung_within(bell, WAIT_S)
    finally:
        bell.stop()
        thread.join(WAIT_S)
    assert not thread.is_alive()


def test_a_ring_says_what_was_queued_and_the_watcher_says_anything(store):
    """The loop skips the webhook pass when only this process's mail rang."""
    bell = doorbell.Doorbell()
    with store.session() as s:
        intake(s, {"subject": "s", "body": "b", "requester": "cust@example.com"}, actor="x")
    assert bell.wait(0) and bell.kinds() == {"mail"}
    with store.session() as s:
        webhooks.register(s, "https://hooks.example/x")
    with store.session() as s:
        webhooks.queue(s, "ticket.escalated", {"id": 1})
    assert bell.wait(0) and bell.kinds() == {"webhook"}
    assert bell.kinds() == set()  # asked once
    bell.ring()  # the watcher's ring: something of another process is due
    assert bell.wait(0) and bell.kinds() == set(doorbell.ANY)


def test_the_watcher_does_not_read_just_after_the_loop_started_a_round(store):
    """A round's claim took every row due, so the watcher skips its read for ``poll`` s
    after one; it reads (and rings) again once rounds stop."""
    bell = doorbell.Doorbell()
    bell.round_at = time.monotonic() + 3600  # a round "just started", for the next hour
    thread = doorbell.watch(store, bell, 0.05)
    assert thread is not None
    try:
        _queue_in_another_process(store)
        assert not _rung_within(bell, 1.0)  # due for 20 polls: no read, no ring
        bell.round_at = float("-inf")
        assert _rung_within(bell, WAIT_S)
    finally:
        bell.stop()
        thread.join(WAIT_S)


def _rung_within(bell, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if bell.wait(0.05):
            return True
    return False


def _wait_for_quiet(bell) -> None:
    """Until the watcher has started (it rings once on PostgreSQL) and nothing rings."""
    bell.wait(1.0)
    while bell.wait(0.3):
        pass


def test_served_desk_sends_the_received_notice_without_waiting_for_the_interval(service_env, tmp_path):
    from service import create_app
    from service.store import close
    from service_fixtures import app_config, auth

    config = {
        **app_config(service_env),
        "TRIAGE_MAIL_INTERVAL": 3600,
        "TRIAGE_MAIL_DIR": str(tmp_path / "out"),
    }
    app = create_app(config)
    try:
        client = app.test_client()
        answer = client.post(
            "/v1/tickets",
            json={"subject": "Printer on fire", "body": "it smokes", "requester": "cust@example.com"},
            headers=auth(),
        )
        assert answer.status_code in (200, 201), answer.get_data(as_text=True)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not list((tmp_path / "out").glob("*.eml")):
            time.sleep(0.05)
        mails = list((tmp_path / "out").glob("*.eml"))
        assert len(mails) == 1 and b"cust@example.com" in mails[0].read_bytes()
    finally:
        app.extensions["triage.mailer_stop"].stop()
        close(app)


def test_delivery_rounds_start_at_most_every_gap_however_often_the_bell_rings():
    """A ring per intake must not mean a round per intake: the first notice after a quiet
    spell leaves at once; rings within the gap wait for one round that takes them all."""
    from service.mailer import ROUND_GAP_S, pause_before_round

    assert pause_before_round(float("-inf"), 1000.0) == 0.0  # the first round: at once
    assert pause_before_round(1000.0, 1000.0 + ROUND_GAP_S / 5) == pytest.approx(ROUND_GAP_S * 4 / 5)
    assert pause_before_round(1000.0, 1000.0 + ROUND_GAP_S) == 0.0
    assert pause_before_round(1000.0, 1000.0 + 10 * ROUND_GAP_S) == 0.0


def test_queuing_mail_sends_no_notification_on_postgresql(store):
    """A transaction that NOTIFYs takes a database-wide lock at commit, held through the WAL
    flush: intakes, nearly all of which queue a notice, would commit one after another."""
    if store.dialect != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    with store.session() as s:
        triggers = s.execute(
            text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'outbox'::regclass AND NOT tgisinternal")
        ).scalars()
        assert list(triggers) == []
