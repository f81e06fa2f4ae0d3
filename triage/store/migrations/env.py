"""Alembic environment: runs against the connection ``triage.store.migrate`` hands over.

There is no alembic.ini: the store is a library, so the URL comes from the
``Store`` (and its schema search path), never from a file next to the code.
"""

from __future__ import annotations

from alembic import context

from triage.store.tables import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    raise RuntimeError("offline migrations are not supported: use Store(url).upgrade()")
run_migrations_online()
