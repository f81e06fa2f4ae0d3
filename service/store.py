"""The app's database: ``get_store()`` for requests, ``init_app`` for the factory.

Flask's tutorial keeps its database handle in ``db.py`` beside the blueprints,
not inside one of them; this is that module. The :class:`~triage.store.Store`
(an engine with its pool) is built on first use and kept in
``app.extensions["triage.store"]``: one per app, shared by the worker's threads,
migrated once (idempotent, lock-protected). ``init_app`` also starts the
background sweep (SLA escalation + webhook delivery) that needs the store, and
``close`` stops it and disposes of the engine (tests, entry points at exit).
"""

from __future__ import annotations

import logging
import threading

from flask import Flask, current_app

from triage.store import Store, clocks, webhooks
from triage.store.engine import database_url

EXTENSION = "triage.store"
STOP = "triage.escalation_stop"
_STORE_LOCK = threading.Lock()
log = logging.getLogger("service.store")


def get_store() -> Store:
    """The app's Store, built on first use (and migrated: idempotent, lock-protected)."""
    return store_of(current_app)


def store_of(app: Flask) -> Store:
    """``get_store`` for code that holds the app rather than an app context."""
    store = app.extensions.get(EXTENSION)
    if store is None:
        with _STORE_LOCK:  # threads of one worker: one engine, one migration run
            store = app.extensions.get(EXTENSION)
            if store is None:
                store = Store(
                    database_url(
                        app.config.get("TRIAGE_DATABASE_URL") or None,
                        app.config.get("TRIAGE_VAR_DIR") or None,
                    )
                )
                store.upgrade()
                app.extensions[EXTENSION] = store
    return store


def init_app(app: Flask) -> None:
    """Called by ``create_app``: start the escalation sweep when it is configured."""
    start_sweep(app)


def close(app: Flask) -> None:
    """Stop the sweep and release the engine's connections (the app may not be used after)."""
    stop = app.extensions.pop(STOP, None)
    if stop is not None:
        stop.set()
    store = app.extensions.pop(EXTENSION, None)
    if store is not None:
        store.dispose()


def start_sweep(app: Flask) -> None:
    """Escalation sweep + webhook delivery every ``TRIAGE_ESCALATION_INTERVAL`` seconds (0: off)."""
    interval = float(app.config.get("TRIAGE_ESCALATION_INTERVAL") or 0)
    if interval <= 0:
        return

    def loop(stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                with app.app_context():
                    store = get_store()
                    fired = clocks.sweep_all(store)
                    webhooks.deliver(store, allow=app.config.get("TRIAGE_WEBHOOK_ALLOW"))
                if fired:
                    log.info("escalation sweep fired %d level(s)", len(fired))
            except Exception:  # noqa: BLE001 - a failed pass must not kill the loop
                log.exception("escalation sweep failed")

    stop = threading.Event()
    app.extensions[STOP] = stop
    threading.Thread(target=loop, args=(stop,), name="escalation", daemon=True).start()
