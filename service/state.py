"""What the service serves: one Triager + KB index + RuleSet, swapped as a unit.

Hot swap: a reload builds a complete :class:`Loaded` in a background thread and
then rebinds ``ServiceState.current`` in one assignment (atomic under the GIL).
Each request takes ``state.snapshot()`` once and uses only that object, so a
request that started on the old bundle finishes on it, and no request ever sees
a new Triager with an old KB. Nothing is loaded at import time.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from flask import current_app

from triage import bundle, champion
from triage.errors import BundleError

from .components import load_kb, load_rules, load_triager
from .errors import ApiError

log = logging.getLogger("service.state")


@dataclass(frozen=True)
class Loaded:
    """Everything one request needs, immutable once built."""

    triager: Any
    kb: Any
    rules: Any
    encoder: Any
    bundle_id: str
    bundle_path: str
    kb_source: str
    rules_path: str
    loaded_at: str
    seconds: float
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        manifest = getattr(self.triager, "manifest", {}) or {}
        return {
            "bundle_id": self.bundle_id,
            "path": self.bundle_path,
            "heads": list(getattr(self.triager, "heads", [])),
            "encoder": self.encoder.reference() if self.encoder is not None else None,
            "kb": {
                "source": self.kb_source,
                "articles": len(getattr(self.kb, "articles", [])),
                "threshold": getattr(getattr(self.kb, "config", None), "threshold", None),
            },
            "rules": self.rules_path,
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.seconds, 3),
            "created": bundle.created_at(manifest),
            "metrics": bundle.head_metrics(manifest),
        }


def resolve_bundle(config: dict, requested: str | None = None) -> Path:
    """TRIAGE_BUNDLE, else models/CHAMPION, else the newest bundle folder.

    Whichever it is must resolve (symlinks followed) inside the models dir, or inside a
    folder the operator trusts (``TRIAGE_TRUSTED_BUNDLES`` / ``triage serve --trust``):
    a joblib file is code (triage/bundle_trust.py). ``requested`` (from an admin reload)
    must name a bundle *inside* the models dir.
    """
    models = Path(config.get("TRIAGE_MODELS_DIR") or "models")
    if requested:
        path = (models / requested).resolve()
        if path.parent != models.resolve() or not path.is_dir():
            raise ApiError(
                404,
                f"bundle {requested!r} is not a folder in the models dir {models}",
                [
                    {
                        "field": "bundle",
                        "message": "unknown bundle",
                        "expected": "a bundle id under the models dir",
                        "got": requested,
                    }
                ],
            )
        return path
    return trusted_bundle(config, _configured_bundle(config, models))


def trusted_bundle(config: dict, path: Path) -> Path:
    """``path`` if it may be loaded (models dir or a trusted folder); BundleError otherwise."""
    from triage.bundle_trust import check_location, parse_trusted

    models = Path(config.get("TRIAGE_MODELS_DIR") or "models")
    check_location(path, models, parse_trusted(config.get("TRIAGE_TRUSTED_BUNDLES")))
    return path


def _configured_bundle(config: dict, models: Path) -> Path:
    if config.get("TRIAGE_BUNDLE"):
        return Path(config["TRIAGE_BUNDLE"])
    path = champion.champion_bundle(models)
    if path is None:
        raise BundleError(
            f"no bundle to serve: TRIAGE_BUNDLE is empty, {models}/CHAMPION is "
            f"missing and {models} holds no bundle folder (run 'triage train')"
        )
    return path


def build_loaded(config: dict, requested: str | None = None) -> Loaded:
    """Load bundle, encoder, KB index and rules; any failure leaves the old state serving."""
    start = time.perf_counter()
    path = resolve_bundle(config, requested)
    rules, rules_path = load_rules(config.get("TRIAGE_RULES_PATH") or None)
    from .desk import check_desk

    check_desk(config, rules, path)  # unknown team names: refuse, naming file and line
    triager, encoder = load_triager(
        path, config.get("TRIAGE_ENCODER") or None, config.get("TRIAGE_BUNDLE_SIGNING_KEY") or None
    )
    kb, kb_source = load_kb(config, path, encoder)
    if encoder is not None:
        encoder.encode(["warm up the encoder"])  # first call pays lazy imports, not a customer
    return Loaded(
        triager,
        kb,
        rules,
        encoder,
        str(getattr(triager, "bundle_id", path.name)),
        str(path),
        kb_source,
        rules_path,
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
        time.perf_counter() - start,
    )


def prepare(config: dict) -> dict:
    """Before gunicorn forks: check the bundle and rules, and build the KB index cache once.

    Workers run with one BLAS thread each; embedding thousands of KB passages there,
    in every worker at once, took minutes. Done here with all cores, the workers
    just load the cached index, and a broken rules file or missing bundle stops
    ``triage serve`` before any worker starts.
    """
    from .components import serving_encoder, bundle_encoder_ref

    path = resolve_bundle(config)
    if config.get("TRIAGE_BUNDLE_SIGNING_KEY"):  # refuse an unsigned bundle before forking
        from triage.bundle import read_manifest
        from triage.bundle_trust import verify_signature

        verify_signature(read_manifest(path), config["TRIAGE_BUNDLE_SIGNING_KEY"], path)
    rules, _ = load_rules(config.get("TRIAGE_RULES_PATH") or None)
    from .desk import check_desk

    check_desk(config, rules, path)
    encoder = serving_encoder(bundle_encoder_ref(path), config.get("TRIAGE_ENCODER") or None)
    kb, source = load_kb(config, path, encoder)
    return {"bundle": str(path), "kb": source, "articles": len(kb.articles)}


class ServiceState:
    """The current :class:`Loaded` plus the machinery to replace it."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.current: Loaded | None = None
        self.last_error: str | None = None
        self.loading = False
        self.reloads = 0
        self.on_swap: list[Callable[[Loaded | None, Loaded], None]] = []
        self._lock = threading.Lock()
        self._watch_token: str | None = None
        self._watch_from: tuple[str | None] | None = None  # the token read before the first load

    # -- reading
    def snapshot(self) -> Loaded:
        """The state a request uses from start to end (503 until the first load finished)."""
        current = self.current
        if current is None:
            detail = f": {self.last_error}" if self.last_error else " (still loading)"
            raise ApiError(503, f"service not ready, no bundle loaded{detail}", headers={"Retry-After": "5"})
        return current

    def status(self) -> dict:
        return {
            "ready": self.current is not None,
            "loading": self.loading,
            "bundle_id": self.current.bundle_id if self.current else None,
            "reloads": self.reloads,
            "last_error": self.last_error,
        }

    # -- loading
    def load(self, requested: str | None = None) -> Loaded:
        """Load synchronously and swap; raises on failure (the old state stays)."""
        with self._lock:
            self.loading = True
            try:
                new = build_loaded(self.config, requested)
            except Exception as exc:
                self.last_error = str(exc)
                log.error(
                    "bundle load failed, keeping %s: %s",
                    self.current.bundle_id if self.current else "nothing",
                    exc,
                )
                raise
            finally:
                self.loading = False
            old, self.current = self.current, new  # the one atomic swap
            self.last_error = None
            self.reloads += old is not None
        log.info(
            "serving bundle %s (loaded in %.2fs; previous %s)",
            new.bundle_id,
            new.seconds,
            old.bundle_id if old else "none",
        )
        for hook in self.on_swap:
            hook(old, new)
        return new

    def load_in_background(self, requested: str | None = None) -> bool:
        """Start a reload thread; False when one is already running."""
        if self.loading:
            return False
        self.loading = True  # set before the thread starts so /readyz never flickers

        def run():
            try:
                self.load(requested)
            except Exception:  # already logged and kept in last_error
                pass

        threading.Thread(target=run, name="triage-reload", daemon=True).start()
        return True

    # -- broadcast to sibling workers
    def request_reload_everywhere(self, requested: str | None = None) -> bool:
        """Reload here in the background and ask sibling gunicorn workers to follow."""
        if self.loading:
            return False
        self.broadcast(requested)
        return self.load_in_background(requested)

    def broadcast(self, requested: str | None = None) -> None:
        """Write a reload token to ``TRIAGE_RUN_DIR`` (atomically) for the sibling watchers."""
        run_dir = self.config.get("TRIAGE_RUN_DIR")
        if not run_dir:
            return
        token = uuid.uuid4().hex
        self._watch_token = token  # this worker loads itself, not through its watcher
        target = Path(run_dir) / "reload.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"token": token, "bundle": requested}), encoding="utf-8")
        os.replace(tmp, target)

    def note_reload_token(self) -> None:
        """Remember the reload token there is before this worker loads its bundle: a reload a
        sibling asks for while this one is still loading (a start that takes seconds) is then
        followed once the watcher runs, instead of being taken for the one already done."""
        run_dir = self.config.get("TRIAGE_RUN_DIR")
        if run_dir:
            self._watch_from = (_read_token(Path(run_dir) / "reload.json")[0],)

    def start_watcher(self, interval: float = 0.5) -> None:
        """Poll ``<run dir>/reload.json`` (a stat per interval) for reloads asked of a sibling."""
        run_dir = self.config.get("TRIAGE_RUN_DIR")
        if not run_dir:
            return
        target = Path(run_dir) / "reload.json"
        if self._watch_token is None:  # (set by a broadcast of this worker's own)
            self._watch_token = self._watch_from[0] if self._watch_from else _read_token(target)[0]

        def watch():
            while True:
                time.sleep(interval)
                token, requested = _read_token(target)
                if token and token != self._watch_token:
                    self._watch_token = token
                    log.info("reload requested by a sibling worker")
                    self.load_in_background(requested)

        threading.Thread(target=watch, name="triage-reload-watch", daemon=True).start()

    def install_sighup(self) -> bool:
        """SIGHUP → background reload. Entry points call this (never create_app)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        signal.signal(signal.SIGHUP, lambda *_: self.load_in_background())
        return True


def _read_token(path: Path) -> tuple[str | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data.get("token"), data.get("bundle")
    except (OSError, ValueError, AttributeError):
        return None, None


def serving_components():
    """(triager, rules, encoder) served now; tickets are still taken while no bundle is loaded."""
    loaded = getattr(current_app.extensions.get("triage.state"), "current", None)
    triager = getattr(loaded, "triager", None)
    rules = getattr(loaded, "rules", None)
    encoder = getattr(loaded, "encoder", None)
    if rules is None:
        rules = current_app.extensions.get("triage.rules_fallback")
        if rules is None:
            from triage.rules import RuleSet

            rules = current_app.extensions["triage.rules_fallback"] = RuleSet.load(
                current_app.config.get("TRIAGE_RULES_PATH") or None
            )
    return triager, rules, encoder
