"""PostgreSQL: an INSERT into the outbox notifies ``triage_outbox`` (the delivery loop's wake).

A statement-level trigger, so the enqueuing transaction sends no statement of its own for
it (the NOTIFY rode a round trip per transaction before this was a trigger) and the server
delivers the notification only if that transaction commits (``triage.store.doorbell``).
SQLite: nothing (its watcher reads ``PRAGMA data_version``).

Revision ID: 0011_outbox_notify
Revises: 0010_fleet
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0011_outbox_notify"
down_revision = "0010_fleet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION triage_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('triage_outbox', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION triage_outbox_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS triage_outbox_notify()")
