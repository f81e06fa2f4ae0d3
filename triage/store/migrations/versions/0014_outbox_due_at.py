"""``ix_outbox_due_at``: the unsent rows (as ``ix_outbox_due``, 0013) by ``next_attempt_at``.

With ``ix_outbox_due`` alone (on ``id``), the reads that ask what is due now (the doorbell's
oldest-due ``min(next_attempt_at)``, the claims' ``next_attempt_at <= now``) read every unsent
row and filtered: a backlog of retries and leased rows due later made each delivery pass read
more (bench/README.md, round 8, ``pgserver``). This index answers them with one range; the
claims' id order still has ``ix_outbox_due``. Both hold only the unsent rows: small.

Revision ID: 0014_outbox_due_at
Revises: 0013_due_and_requester_indexes
Create Date: 2026-12-07 04:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_outbox_due_at"
down_revision = "0013_due_and_requester_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_due_at",
        "outbox",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NULL AND failed IS false"),
        sqlite_where=sa.text("delivered_at IS NULL AND failed IS 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_due_at", table_name="outbox")
