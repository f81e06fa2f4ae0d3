"""The app's mailer: outgoing mail settings, the transport, and the delivery loop.

Mail is never sent inside a request. Views (and the store functions they call)
only queue rows in the outbox; this module's loop, one thread per worker woken when
mail is queued (``triage.store.doorbell``) and every ``TRIAGE_MAIL_INTERVAL`` seconds
regardless, claims due rows under a lease and sends them,
``TRIAGE_MAIL_BATCH`` at a time and batch after batch while they come back full,
together with webhook deliveries and pending reminders. Several workers (or a
``triage escalate`` beside them) share the work safely: a leased row is
invisible to the others.

Without ``TRIAGE_SMTP_HOST`` every mail is written to ``TRIAGE_MAIL_DIR`` as an
``.eml`` file and the admin outbox page (``service/mail_admin.py``) lists it, so
the demo shows the whole loop without a mail server.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta

from flask import Flask, current_app

from triage.mail.outbound import FolderTransport, Mailer, MailSettings, SmtpTransport
from triage.store import doorbell, notices, outbound, webhooks
from triage.store.tables import utcnow

log = logging.getLogger("service.mailer")

# Rounds start at most this often, however often the doorbell rings. A round has a fixed
# cost (reminders' scan, the claim's write transaction, the webhook pass, the outcome's
# UPDATE) that a batch shares and a single notice does not: with a round per intake, at
# ~100 intakes/s that cost went into every intake (bench/README.md, "Idle rerun, round 6").
# The first notice after a quiet spell still leaves at once; under load a round takes what
# queued during the gap, so a notice waits at most this much longer.
ROUND_GAP_S = 0.25


def pause_before_round(last_start: float, now: float, gap: float = ROUND_GAP_S) -> float:
    """Seconds to wait before starting a round, the last one having started at ``last_start``."""
    return max(0.0, last_start + gap - now)


def public_url(config) -> str:
    return (
        config.get("TRIAGE_PUBLIC_URL") or f"http://{config.get('TRIAGE_BIND', '127.0.0.1:8000')}"
    ).rstrip("/")


def build(config) -> Mailer:
    """A Mailer from the declared settings (SMTP when a host is set, else the mail folder)."""
    settings = MailSettings(
        from_address=config["TRIAGE_MAIL_FROM"],
        from_name=config["TRIAGE_MAIL_FROM_NAME"],
        public_url=public_url(config),
        templates_dir=config.get("TRIAGE_MAIL_TEMPLATES") or None,
        attachments_root=config.get("TRIAGE_ATTACHMENTS_DIR") or None,
    )
    if config.get("TRIAGE_SMTP_HOST"):
        transport = SmtpTransport(
            config["TRIAGE_SMTP_HOST"],
            int(config["TRIAGE_SMTP_PORT"]),
            config["TRIAGE_SMTP_SECURITY"],
            config["TRIAGE_SMTP_USER"],
            config["TRIAGE_SMTP_PASSWORD"],
        )
    else:
        transport = FolderTransport(config["TRIAGE_MAIL_DIR"])
    return Mailer(settings, transport)


def receipts_per_hour(config) -> int:
    """``TRIAGE_MAIL_RECEIPTS_PER_HOUR`` (0 or less: no limit)."""
    value = config.get("TRIAGE_MAIL_RECEIPTS_PER_HOUR")
    return max(0, int(outbound.RECEIPTS_PER_HOUR if value is None else value))


def get_mailer() -> Mailer:
    return current_app.extensions["triage.mailer"]


@dataclass(frozen=True)
class Rules:
    """What a delivery round follows (the service's loop and ``triage escalate`` read them
    from the settings: :meth:`from_config`).

    ``webhook_allow`` is ``TRIAGE_WEBHOOK_ALLOW``: the non-public hosts webhooks may reach;
    ``reminder_hours`` 0: no pending reminders."""

    reminder_hours: float = 0.0
    webhook_allow: str = ""
    batch: int = outbound.BATCH
    receipts_per_hour: int = outbound.RECEIPTS_PER_HOUR

    @classmethod
    def from_config(cls, config) -> Rules:
        return cls(
            reminder_hours=float(config.get("TRIAGE_MAIL_PENDING_REMINDER_HOURS") or 0),
            webhook_allow=config.get("TRIAGE_WEBHOOK_ALLOW") or "",
            batch=max(1, int(config.get("TRIAGE_MAIL_BATCH") or outbound.BATCH)),
            receipts_per_hour=receipts_per_hour(config),
        )


def deliver_once(
    store, mailer: Mailer, rules: Rules = Rules(), *, keep_open: bool = False, hooks: bool = True
) -> dict[str, int]:
    """Reminders queued, then one delivery pass of mail and (``hooks``) webhooks.

    ``keep_open``: the SMTP connection stays for the next pass (:func:`deliver_due`)."""
    if rules.reminder_hours > 0:
        with store.session() as session:
            notices.remind_pending(session, utcnow(), timedelta(hours=rules.reminder_hours))
    try:
        counts = outbound.deliver(
            store,
            mailer.send,
            domain=mailer.settings.domain,
            limit=rules.batch,
            receipts_per_hour=rules.receipts_per_hour,
        )
    finally:
        if not keep_open:
            mailer.close()
    if not hooks:
        return counts
    done = webhooks.deliver(store, allow=rules.webhook_allow)
    return {**counts, **{f"webhook_{k}": v for k, v in done.items()}}


def deliver_due(
    store, mailer: Mailer, rules: Rules = Rules(), *, stop=None, hooks: bool = True
) -> dict[str, int]:
    """Passes back to back while each sends a whole batch (the loop's body), summed.

    A fixed batch per interval capped a worker at ``batch / interval`` mails a second
    (50 per 5 s: 10/s), below what intake queues; passes back to back send as fast as the
    relay takes them. Back-pressure stays: one batch leased at a time, and a pass that
    sends less than a full batch (the outbox is drained, or a mail failed: the relay may
    be struggling) ends the round. Reminders: once per round. ``stop``: anything with
    ``is_set()`` (an Event, the loop's doorbell) that ends the round early.
    """
    total: dict[str, int] = {}
    try:
        while True:
            counts = deliver_once(store, mailer, rules, keep_open=True, hooks=hooks)
            rules = replace(rules, reminder_hours=0.0)
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
            if counts["sent"] < rules.batch or (stop is not None and stop.is_set()):
                return total
    finally:
        mailer.close()


def init_app(app: Flask) -> None:
    app.extensions["triage.mailer"] = build(app.config)
    interval = float(app.config.get("TRIAGE_MAIL_INTERVAL") or 0)
    if interval > 0:
        _start_loop(app, interval)


def _start_loop(app: Flask, interval: float) -> None:
    """The delivery thread: a round when queued mail rings the doorbell (this process at
    commit, other processes through :func:`doorbell.watch`), or after ``interval`` s
    without one (the safety net: retries coming due, a watcher that lost its connection). Pending
    reminders: at most once per interval (a scan of pending tickets, not per mail).

    The webhook pass (a claim in a transaction of its own) runs when a round may find
    webhooks: rung by a queued webhook or by the watcher (something of another process is
    due), the interval's round, and at least once per interval. A round rung only by this
    process's mail skips it: on PostgreSQL that pass was a fifth of a round's fixed cost."""
    from .store import get_store

    rules = Rules.from_config(app.config)
    poll = float(app.config.get("TRIAGE_MAIL_WAKE_POLL") or 0)
    bell = doorbell.Doorbell()

    def loop() -> None:
        with app.app_context():
            doorbell.watch(get_store(), bell, poll)
        reminded, hooked, started = 0.0, 0.0, float("-inf")
        while True:
            rung = bell.wait(interval)
            if bell.is_set():
                return
            pause = pause_before_round(started, time.monotonic())
            if pause and bell.stopped.wait(pause):  # rings meanwhile join this round
                return
            started = bell.round_at = time.monotonic()
            hooks = not rung or bool(bell.kinds() - {"mail"}) or started - hooked >= interval
            hooked = started if hooks else hooked
            remind = time.monotonic() - reminded >= interval
            try:
                with app.app_context():
                    counts = deliver_due(
                        get_store(),
                        app.extensions["triage.mailer"],
                        rules if remind else replace(rules, reminder_hours=0.0),
                        stop=bell,
                        hooks=hooks,
                    )
                if remind:
                    reminded = time.monotonic()
                if any(v for k, v in counts.items() if not k.endswith("sent")):
                    log.info("outbox: %s", counts)  # a round per notice: only trouble at info
            except Exception:  # noqa: BLE001 - a failed pass must not end the loop
                log.exception("outbox delivery failed")

    app.extensions["triage.mailer_stop"] = bell  # bell.stop() ends the loop and its watcher
    threading.Thread(target=loop, name="outbox", daemon=True).start()
