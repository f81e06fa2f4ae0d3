"""One champion for the fleet: published in the shared database, followed by every server."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from serving import free_port, launch, server_env, stop, triage_serve, wait_ready
from service_fixtures import KEYS_SPEC, TICKET
from store_support import postgres_or_skip
from triage.store import fleet


def test_publish_then_any_machine_unpacks_the_newest_champion(store, service_env, tmp_path):
    bundle = Path(service_env["bundle"])
    with store.session() as s:
        assert fleet.current(s) is None
        first = fleet.publish(s, bundle, by="ops@x")
        assert first.bundle_id == bundle.name and first.action == "promote"
        again = fleet.publish(s, bundle, action="rollback", reason="bad labels")  # archived once
        assert again.id > first.id and again.action == "rollback"
        assert s.query(fleet.FleetBundle).count() == 1
    elsewhere = tmp_path / "other-machine" / "models"  # no shared filesystem
    with store.session(readonly=True) as s:
        got = fleet.materialize(s, fleet.current(s).bundle_id, elsewhere)
    assert got == elsewhere / bundle.name
    for path in bundle.rglob("*"):
        if path.is_file():
            assert (got / path.relative_to(bundle)).read_bytes() == path.read_bytes()
    from triage.predict import Triager

    assert Triager.from_bundle(got).bundle_id == bundle.name  # checksums verified on load


def test_publish_refuses_a_folder_that_is_not_a_bundle(store, tmp_path):
    from triage.errors import BundleError

    with store.session() as s, pytest.raises(BundleError, match="manifest.json"):
        fleet.publish(s, tmp_path)


# ------------------------------------------------------------ two servers, one champion
@pytest.fixture()
def fleet_db():
    """A throw-away schema in the test PostgreSQL, as a URL both servers and promote use."""
    url = postgres_or_skip()
    schema = f"triage_fleet_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _registered_bundles(tmp_path, mlflow_uri: str) -> list[Path]:
    """Two real (hashing) bundles, trained and registered as versions 1 and 2."""
    from service_fixtures import DEMO
    from training import tracking
    from training.pipeline import train

    bundles = []
    for seed in (0, 1):
        result = train(
            DEMO / "tickets.csv",
            DEMO / "mapping.yaml",
            tmp_path / "trainer",
            encoder="hashing",
            candidates=("tfidf",),
            cv=3,
            seed=seed,
            progress=False,
        )
        tracking.log_training_run(result, result.bundle_path, tracking_uri=mlflow_uri)
        bundles.append(Path(result.bundle_path))
        time.sleep(1.1)  # bundle ids carry the UTC second
    return bundles


def _serve(tmp_path, name: str, models: Path, db: str):
    port = free_port()
    settings = {
        "TRIAGE_MODELS_DIR": str(models),
        "TRIAGE_DATABASE_URL": db,
        "TRIAGE_FOLLOW_CHAMPION": "0.5",
        "TRIAGE_KB_PATH": str(tmp_path / "kb"),
        "TRIAGE_API_KEYS": KEYS_SPEC,
        "TRIAGE_CACHE_DIR": str(tmp_path / f"cache-{name}"),
    }
    log_path = tmp_path / f"serve-{name}.log"
    command, env = triage_serve(port, "--workers", "2"), server_env(settings, unset=("TRIAGE_BUNDLE",))
    return f"http://127.0.0.1:{port}", launch(command, env, log_path), log_path


class Load:
    """Bounded classify traffic at every server while the champion moves; counts failures."""

    def __init__(self, bases: list[str], limit: int = 3000) -> None:
        self.bases, self.limit = bases, limit
        self.sent = self.failed = 0
        self.errors: list[str] = []
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        s = requests.Session()
        s.headers["Authorization"] = "Bearer intake-key"
        while not self.halt.is_set() and self.sent < self.limit:
            for base in self.bases:
                self.sent += 1
                try:
                    r = s.post(f"{base}/v1/classify", json=TICKET, timeout=30)
                    ok = r.status_code == 200
                except requests.RequestException as exc:
                    ok, r = False, exc
                if not ok:
                    self.failed += 1
                    self.errors.append(str(getattr(r, "text", r))[:200])
            time.sleep(0.02)


def _serving(base: str, bundle_id: str, deadline: float) -> float:
    """Seconds until 8 classify answers in a row (both workers) come from ``bundle_id``."""
    start, streak = time.time(), 0
    s = requests.Session()
    s.headers["Authorization"] = "Bearer intake-key"
    while streak < 8:
        assert time.time() < deadline, f"{base} still serves another bundle than {bundle_id}"
        got = s.post(f"{base}/v1/classify", json=TICKET, timeout=30).json().get("bundle_id")
        streak = streak + 1 if got == bundle_id else 0
        time.sleep(0.05)
    return time.time() - start


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(1800)  # trains two bundles and starts two gunicorn servers
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # inside MLflow
def test_promote_and_rollback_reach_both_servers_with_no_failed_request(
    tmp_path, monkeypatch, fleet_db, service_env
):
    from training import tracking

    shutil.copytree(service_env["kb"], tmp_path / "kb") if Path(service_env["kb"]).is_dir() else shutil.copy(
        service_env["kb"], tmp_path / "kb"
    )
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("TRIAGE_MODELS_DIR", str(tmp_path / "trainer"))
    old, new = _registered_bundles(tmp_path, mlflow_uri)
    tracking.promote(
        old.name, tracking_uri=mlflow_uri, champion_file=tmp_path / "CHAMPION", fleet_database=fleet_db
    )

    servers = []
    try:
        for name in ("a", "b"):  # two machines: each its own models dir, holding only `old`
            models = tmp_path / f"machine-{name}" / "models"
            shutil.copytree(old, models / old.name)
            servers.append(_serve(tmp_path, name, models, fleet_db))
        for base, proc, log_path in servers:
            try:  # two gunicorn servers starting at once on a busy 2-core machine are slow
                wait_ready(base, proc, 600, log_path)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{log_path.read_text(errors='replace')[-3000:]}")
        bases = [s[0] for s in servers]
        load = Load(bases)
        load.thread.start()
        deadline = time.time() + 120
        for base in bases:
            _serving(base, old.name, deadline)

        tracking.promote(
            new.name,
            force=True,
            reason="fleet test",
            tracking_uri=mlflow_uri,
            champion_file=tmp_path / "CHAMPION",
            fleet_database=fleet_db,
        )
        deadline = time.time() + 120
        for base in bases:
            _serving(base, new.name, deadline)
        for name in ("a", "b"):  # fetched from the database, not copied by anyone
            assert (tmp_path / f"machine-{name}" / "models" / new.name / "manifest.json").exists()

        tracking.rollback(
            reason="fleet test",
            tracking_uri=mlflow_uri,
            champion_file=tmp_path / "CHAMPION",
            fleet_database=fleet_db,
        )
        deadline = time.time() + 120
        for base in bases:
            _serving(base, old.name, deadline)
        load.halt.set()
        load.thread.join(60)
        assert load.sent > 20
        assert load.failed == 0, load.errors[:5]
    finally:
        for _, proc, _ in servers:
            stop(proc)
