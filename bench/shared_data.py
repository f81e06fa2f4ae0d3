"""Where the shared help-desk data lives, for the benches that read it (never copied into the repo).

``$TRIAGE_SHARED_DATA`` if set, else ``shared/data`` beside the checkout, else beside the
folder that holds the checkout (a git worktree under ``wt/``). The first that exists wins;
when none does, the path beside the checkout is named so the bench's error says where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_PLACES = [ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data"]
if os.environ.get("TRIAGE_SHARED_DATA"):
    _PLACES.insert(0, Path(os.environ["TRIAGE_SHARED_DATA"]))
SHARED = next((p for p in _PLACES if p.is_dir()), ROOT.parent / "shared" / "data")
