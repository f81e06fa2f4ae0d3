"""PostgreSQL: the outbox's NOTIFY trigger of 0011 dropped (the delivery loop polls instead).

A transaction that sends a notification takes a database-wide lock at commit and holds it
through the WAL flush, so nearly every intake (each queues a received notice) committed one
after another and paid ~0.4 ms more server CPU (bench/bench_store.py, round 6's idle rerun).
``triage.store.doorbell`` now looks for rows other processes queued with one indexed read
per poll; a commit in the same process still rings its loop at once.

Revision ID: 0012_outbox_notify_dropped
Revises: 0011_outbox_notify
Create Date: 2026-12-06 23:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0012_outbox_notify_dropped"
down_revision = "0011_outbox_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS triage_outbox_notify()")


def downgrade() -> None:
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
