"""Two indexes that kept growing reads bounded (round 8, ``pgserver``).

* ``ix_outbox_due``: only the rows still to send (``delivered_at IS NULL AND failed IS
  false``), on ``id`` (the claims' order: with statistics that see many unsent rows,
  PostgreSQL walks an id index from the oldest row, and the primary key holds every row
  ever queued). The old ``(delivered_at, next_attempt_at)`` kept every
  failed row (a bounce, a notice the mail-loop guard held back) in the range the due reads
  start from, for good: each delivery pass and the doorbell's oldest-due read walked them all,
  and PostgreSQL's CPU per intake grew the longer a desk ran.
* ``ix_tickets_requester_created_at`` replaces ``ix_tickets_requester``: the outbox's
  mail-loop guard reads a few requesters' tickets of the last hour; by ``created_at`` alone
  that was every ticket of the hour, filtered.

Revision ID: 0013_due_and_requester_indexes
Revises: 0012_outbox_notify_dropped
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_due_and_requester_indexes"
down_revision = "0012_outbox_notify_dropped"
branch_labels = None
depends_on = None


def _due() -> dict:
    """The partial index's predicate, written as each database's due queries write it."""
    return {
        "postgresql_where": sa.text("delivered_at IS NULL AND failed IS false"),
        "sqlite_where": sa.text("delivered_at IS NULL AND failed IS 0"),
    }


def upgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["id"], unique=False, **_due())
    op.drop_index("ix_tickets_requester", table_name="tickets")
    op.create_index("ix_tickets_requester_created_at", "tickets", ["requester", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_requester_created_at", table_name="tickets")
    op.create_index("ix_tickets_requester", "tickets", ["requester"], unique=False)
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["delivered_at", "next_attempt_at"], unique=False)
