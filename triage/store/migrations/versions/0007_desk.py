"""The desk as data: team calendars and contacts, agent e-mail and seniority, queues, changes.

Revision ID: 0007_desk
Revises: 0006_time_indexes
Create Date: 2026-12-01 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007_desk"
down_revision = "0006_time_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no server default: rows written before (or by plain SQL) read as the defaults
    # (no contacts, regular seniority, active), so nothing that inserts teams or agents breaks.
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calendar", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("escalation_contacts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("active", sa.Boolean(), nullable=True))
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("seniority", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("active", sa.Boolean(), nullable=True))
    op.create_table(
        "desk_queues",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_desk_queues")),
    )
    op.create_table(
        "desk_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_changes")),
    )
    with op.batch_alter_table("desk_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_changes_name"), ["name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("desk_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desk_changes_name"))
    op.drop_table("desk_changes")
    op.drop_table("desk_queues")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("active")
        batch_op.drop_column("seniority")
        batch_op.drop_column("email")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("active")
        batch_op.drop_column("description")
        batch_op.drop_column("escalation_contacts")
        batch_op.drop_column("calendar")
