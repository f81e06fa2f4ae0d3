"""Where training finds the models dir. The pointer itself lives in :mod:`triage.champion`.

``triage promote`` and ``triage rollback`` move the MLflow alias and then rewrite
``<models dir>/CHAMPION`` with :func:`triage.champion.write_pointer`; the service
reads it with :func:`triage.champion.read_pointer`.
"""
from __future__ import annotations

import os
from pathlib import Path

from triage.champion import read_pointer, write_pointer

__all__ = ["models_dir", "read_pointer", "write_pointer"]


def models_dir(root: Path) -> Path:
    """``TRIAGE_MODELS_DIR`` (as the service reads it), else ``<project>/models``."""
    return Path(os.environ.get("TRIAGE_MODELS_DIR") or root / "models")
