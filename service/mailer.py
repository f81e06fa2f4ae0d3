"""The app's mailer: outgoing mail settings, the transport, and the delivery loop.

Mail is never sent inside a request. Views (and the store functions they call)
only queue rows in the outbox; this module's loop, one thread per worker every
``TRIAGE_MAIL_INTERVAL`` seconds, claims due rows under a lease and sends them,
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
from datetime import timedelta

from flask import Flask, current_app

from triage.mail.outbound import FolderTransport, Mailer, MailSettings, SmtpTransport
from triage.store import notices, outbound, webhooks
from triage.store.tables import utcnow

log = logging.getLogger("service.mailer")


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


def get_mailer() -> Mailer:
    return current_app.extensions["triage.mailer"]


def deliver_once(
    store, mailer: Mailer, reminder_hours: float = 0.0, webhook_allow: str = ""
) -> dict[str, int]:
    """Reminders queued, then one delivery pass of mail and webhooks (the loop's body).

    ``webhook_allow`` is ``TRIAGE_WEBHOOK_ALLOW``: the non-public hosts webhooks may reach."""
    if reminder_hours > 0:
        with store.session() as session:
            notices.remind_pending(session, utcnow(), timedelta(hours=reminder_hours))
    try:
        counts = outbound.deliver(store, mailer.send, domain=mailer.settings.domain)
    finally:
        mailer.close()
    hooks = webhooks.deliver(store, allow=webhook_allow)
    return {**counts, **{f"webhook_{k}": v for k, v in hooks.items()}}


def init_app(app: Flask) -> None:
    app.extensions["triage.mailer"] = build(app.config)
    interval = float(app.config.get("TRIAGE_MAIL_INTERVAL") or 0)
    if interval > 0:
        _start_loop(app, interval)


def _start_loop(app: Flask, interval: float) -> None:
    from .store import get_store

    hours = float(app.config.get("TRIAGE_MAIL_PENDING_REMINDER_HOURS") or 0)

    def loop(stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                with app.app_context():
                    counts = deliver_once(
                        get_store(),
                        app.extensions["triage.mailer"],
                        hours,
                        app.config.get("TRIAGE_WEBHOOK_ALLOW") or "",
                    )
                if any(counts.values()):
                    log.info("outbox: %s", counts)
            except Exception:  # noqa: BLE001 - a failed pass must not end the loop
                log.exception("outbox delivery failed")

    stop = threading.Event()
    app.extensions["triage.mailer_stop"] = stop
    threading.Thread(target=loop, args=(stop,), name="outbox", daemon=True).start()
