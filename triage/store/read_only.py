"""How a unit of work that only reads is opened, per database. Its own module: intake and similar
use it, and engine.py (which imports similar) must not be imported by similar (no import circle).
"""

from __future__ import annotations


def read_options(dialect: str) -> dict:
    """Execution options of a read-only unit of work (``Session.connection(execution_options=)``).

    SQLite: a plain ``BEGIN`` (no write lock: readers run beside a writer under WAL).
    PostgreSQL: autocommit, i.e. no ``BEGIN`` and ``COMMIT`` round trips around the reads;
    under READ COMMITTED (the default) each statement reads its own snapshot inside a
    transaction too, so the reads see exactly what they saw before. Writing in such a unit
    of work is not atomic: only reads belong in it.
    """
    if dialect == "postgresql":
        return {"triage_readonly": True, "isolation_level": "AUTOCOMMIT"}
    return {"triage_readonly": True}
