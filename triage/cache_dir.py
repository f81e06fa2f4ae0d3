"""Where the library keeps what it can rebuild: embedding caches, ONNX exports, KB indexes.

The library never reads the environment: the entry points (``create_app``, the
``triage`` command, the test suite) resolve ``TRIAGE_CACHE_DIR`` through
``service/settings.py`` and hand it over once with :func:`use`. Code that wants a
different folder for one object passes it explicitly (``CachedEncoder(cache_dir=...)``).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT = Path.home() / ".cache" / "triage"
_configured: Path | None = None


def use(path: str | Path | None) -> None:
    """Set the cache folder of this process (None or empty: back to ``~/.cache/triage``)."""
    global _configured
    _configured = Path(path) if path else None


def cache_dir() -> Path:
    """The cache folder of this process (created by whoever writes into it)."""
    return _configured or DEFAULT
