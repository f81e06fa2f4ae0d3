"""Running the Alembic migrations from code (``Store.upgrade()``, ``triage db upgrade``).

The configuration is built here rather than read from an ``alembic.ini`` so the
migrations travel with the installed package and always target the store's
own engine.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there.

    On PostgreSQL an advisory lock serialises service workers that start
    together, so only the first one migrates and the others find it done.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(724001)")
        command.upgrade(alembic_config(connection), revision)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new revision against ``engine`` (developer tool)."""
    with engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)
