"""What every test shares: isolation from the developer's environment, and the expensive
fixtures built once per session.

Fixtures live here and only here: a module that imported a fixture by name got its
own copy, so a session fixture was rebuilt per module (the small bundle was trained
once per importing module). Helpers and constants stay in ``service_fixtures.py`` and
``store_support.py``; import those freely.

Isolation (autouse, every test):

- every ``TRIAGE_*`` and ``MLFLOW_*`` variable of the developer's shell is cleared (only
  ``TRIAGE_TEST_*`` and ``TRIAGE_SCHEMATHESIS_*``, the test runner's own settings, are kept), so a local
  ``TRIAGE_DATABASE_URL`` or tracking URI never leaks into a test;
- the store, ``TRIAGE_HOME``, MLflow and the runtime folder (secret key, mail,
  attachments) point into the test's temporary folder, the caches into the session's;
- a session check fails the run when the suite changed the working tree (a test
  wrote outside its temporary folder).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from service_fixtures import app_config, train_small_bundle, write_kb
from store_support import BACKENDS, empty, postgres_or_skip
from triage import cache_dir
from triage.store import Store

ROOT = Path(__file__).resolve().parents[1]
# the test runner's own settings (declared in service/settings.py), not the app's
KEPT = ("TRIAGE_TEST_", "TRIAGE_SCHEMATHESIS_")


# ----------------------------------------------------------------- isolation
@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One cache folder per session (embeddings, ONNX exports, KB indexes are rebuilt once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path, session_cache):
    """No TRIAGE_*/MLFLOW_* from the shell; store, caches and MLflow inside tmp_path."""
    for key in list(os.environ):
        if key.startswith(("TRIAGE_", "MLFLOW_")) and not key.startswith(KEPT):
            monkeypatch.delenv(key)
    home = tmp_path / "triage-home"
    monkeypatch.setenv("TRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'triage.db'}")
    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("TRIAGE_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path / "var"))  # secret key, mail, attachments
    cache_dir.use(session_cache)  # what create_app and the CLI do with TRIAGE_CACHE_DIR
    yield home
    cache_dir.use(None)


# what a run may legitimately leave in the checkout (byte code, caches, the venv)
# and artifacts/ (the browser tests' screenshots, kept by CI on purpose)
_SCRATCH = (
    "__pycache__",
    ".pytest_cache",
    ".venv",
    ".egg-info",
    ".hypothesis",
    ".ipynb_checkpoints",
    ".ruff_cache",
    ".mypy_cache",
    "build/",
    "artifacts/",
)


def working_tree_state(root: Path) -> dict[str, tuple]:
    """Every changed, untracked or ignored path of the checkout (scratch excluded), with the
    size and mtime of each file under it, so a rewrite of an already-dirty file shows too."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    state: dict[str, tuple] = {}
    for entry in filter(None, out.split("\0")):
        path = entry[3:]
        if any(s in path for s in _SCRATCH):
            continue
        target = root / path
        files = (
            [target]
            if target.is_file()
            else sorted(
                p for p in target.rglob("*") if p.is_file() and not any(s in str(p) for s in _SCRATCH)
            )
        )
        for f in files:
            st = f.stat()
            state[str(f.relative_to(root))] = (entry[:2], st.st_size, st.st_mtime_ns)
    return state


@pytest.fixture(scope="session", autouse=True)
def working_tree_unchanged():
    """Fails the session (an error at teardown) if the suite wrote into the checkout."""
    if not (ROOT / ".git").exists():
        yield
        return
    before = working_tree_state(ROOT)
    yield
    after = working_tree_state(ROOT)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, (
        f"the test suite wrote into the working tree (tests must write only under tmp_path): {changed[:20]}"
    )


# ----------------------------------------------------------------- the service
@pytest.fixture(scope="session")
def service_env(tmp_path_factory):
    """(models dir, bundle path, kb path): the small hashing bundle, trained once per session."""
    root = tmp_path_factory.mktemp("service")
    models = root / "models"
    bundle = train_small_bundle(models)
    return {"models": models, "bundle": bundle, "kb": write_kb(root), "root": root}


@pytest.fixture()
def app(service_env):
    from service import create_app
    from service.store import close

    app = create_app(app_config(service_env))
    yield app
    close(app)


@pytest.fixture()
def client(app):
    return app.test_client()


# ----------------------------------------------------------------- the store
@pytest.fixture(scope="session", params=BACKENDS)
def backend(request, tmp_path_factory):
    """A migrated database for the whole session, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "triage.db"
        store = Store(f"sqlite:///{path}")
        store.upgrade()
        yield store
        store.dispose()
        return
    url = postgres_or_skip()
    schema = f"triage_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    store = Store(url, schema=schema)
    try:
        store.upgrade()
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(backend):
    """The session's database, emptied: each test starts from nothing."""
    empty(backend)
    return backend
