"""Admin policy changes: per-head mode and per-class thresholds, append-only (issue 5).

Revision ID: 0004_policies
Revises: 0003_shadow
Create Date: 2026-11-27 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Registers the table on the store's metadata in every process that migrates, so the
# metadata-versus-migrations check sees it even where nothing else imported the module.
import triage.store.policies  # noqa: F401,E402

revision = "0004_policies"
down_revision = "0003_shadow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.Column("bundle_id", sa.String(length=200), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_changes")),
    )
    with op.batch_alter_table("policy_changes", schema=None) as batch_op:
        batch_op.create_index("ix_policy_changes_head", ["head", "label"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("policy_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_changes_head")
    op.drop_table("policy_changes")
