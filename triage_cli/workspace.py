"""Where the ``triage`` command finds things: paths and names resolved from the settings.

An entry point, so it may read the environment (through ``service/settings.py``, which
refuses unknown ``TRIAGE_*`` names); the library it calls takes every path as an
argument. Relative paths resolve against ``TRIAGE_HOME``, else the working directory,
never against where the package is installed: run from another folder, the command
writes there, not into the source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from service import settings
from triage import cache_dir
from triage.champion import pointer_file


def setting(name: str) -> Any:
    return settings.value(name)


def configure() -> None:
    """Once per command: check the environment, hand the cache folder to the library."""
    cache_dir.use(setting("TRIAGE_CACHE_DIR"))


def home() -> Path:
    """``TRIAGE_HOME``, else the working directory."""
    return Path(setting("TRIAGE_HOME") or Path.cwd())


def under_home(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else home() / path


def models_dir(given: str | Path | None = None) -> Path:
    """``--models``, else ``TRIAGE_MODELS_DIR`` (relative: under the home)."""
    return Path(given) if given else under_home(setting("TRIAGE_MODELS_DIR") or "models")


def champion_file(given: str | Path | None = None) -> Path:
    return Path(given) if given else pointer_file(models_dir())


def var_dir() -> Path:
    return under_home(setting("TRIAGE_VAR_DIR") or "var")


def database_url(given: str | None = None) -> str:
    """``--database``, else ``TRIAGE_DATABASE_URL``, else ``<var dir>/triage.db``."""
    from triage.store.engine import database_url as resolve

    return resolve(given or setting("TRIAGE_DATABASE_URL") or None, var_dir())


def tracking_uri(given: str | None = None) -> str:
    """``--tracking-uri``, else MLflow's own ``MLFLOW_TRACKING_URI``, else ``<home>/mlflow.db``."""
    if given:
        return given
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    return f"sqlite:///{home() / 'mlflow.db'}"


def user() -> str | None:
    """``TRIAGE_USER`` (None: the library records the login name)."""
    return setting("TRIAGE_USER") or None


def demo_dir() -> Path:
    """The demo corpus: ``data/demo`` under the home (a checkout, or a copy of its data)."""
    return under_home("data/demo")
