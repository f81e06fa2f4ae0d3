"""Every server follows the fleet's champion: a poll of the shared database, then a no-drop swap.

``triage promote`` / ``rollback`` publish the champion (and its archived bundle) in the
database every server already uses (``triage.store.fleet``). Each worker polls the
newest pointer row every ``TRIAGE_FOLLOW_CHAMPION`` seconds; when it names a bundle
other than the one served, the worker unpacks it into its own models dir (if it lacks
it) and reloads in the background: requests keep being answered by the old bundle
until the new one is complete (``ServiceState.load``). A promotion therefore reaches
every server within one interval plus the bundle's load time, with no shared
filesystem and no MLflow in the service.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import Flask

from triage.store import fleet

from .state import ServiceState
from .store import store_of

log = logging.getLogger("service.fleet")
STOP = "triage.fleet_stop"


def start_follower(app: Flask, state: ServiceState) -> threading.Thread | None:
    """Start the follower thread when TRIAGE_FOLLOW_CHAMPION > 0 and no bundle is pinned."""
    interval = float(app.config.get("TRIAGE_FOLLOW_CHAMPION") or 0)
    if interval <= 0 or app.config.get("TRIAGE_BUNDLE"):
        return None
    stop = app.extensions[STOP] = threading.Event()
    follower = Follower(app, state)

    def run():
        while True:
            try:
                follower.check()
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the thread
                log.warning("fleet champion check failed (will retry): %s", exc)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=run, name="triage-fleet-follow", daemon=True)
    thread.start()
    return thread


class Follower:
    """One check: is the fleet's champion the bundle served here? If not, fetch and swap."""

    def __init__(self, app: Flask, state: ServiceState) -> None:
        self.app, self.state = app, state
        self.models = Path(app.config.get("TRIAGE_MODELS_DIR") or "models")
        self.acted_on: int | None = None  # the pointer row already handled (or failed)

    def check(self) -> bool:
        """True when a swap to the fleet's champion was started."""
        if self.state.loading:
            return False  # the start-up load or a reload is running: look again next time
        with store_of(self.app).session(readonly=True) as session:
            champ = fleet.current(session)
            if champ is None or champ.id == self.acted_on:
                return False
            served = self.state.current.bundle_id if self.state.current else None
            if champ.bundle_id == served:
                self.acted_on = champ.id
                return False
            fleet.materialize(session, champ.bundle_id, self.models)
        started = self.state.load_in_background(champ.bundle_id)
        if started:
            self.acted_on = champ.id  # a bundle that fails to load is not retried in a loop
            log.info("fleet champion is %s (%s): swapping from %s", champ.bundle_id, champ.action, served)
        return started


def stop(app: Flask) -> None:
    event = app.extensions.get(STOP)
    if event is not None:
        event.set()
