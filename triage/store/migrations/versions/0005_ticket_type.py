"""Tickets get an ITIL type column, so the "type" head no longer writes into category.

Revision ID: 0005_ticket_type
Revises: 0004_policies
Create Date: 2026-11-27 05:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_ticket_type"
down_revision = "0004_policies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ticket_type", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("ticket_type")
