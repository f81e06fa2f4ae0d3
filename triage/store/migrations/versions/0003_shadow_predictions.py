"""Shadow predictions: a challenger bundle's answers on live tickets, stored, never applied.

Revision ID: 0003_shadow
Revises: 0002_portal
Create Date: 2026-11-27 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Registers the table on the store's metadata in every process that migrates, so the
# metadata-versus-migrations check sees it even where nothing else imported the module.
import triage.store.shadow  # noqa: F401,E402

revision = "0003_shadow"
down_revision = "0002_portal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("head", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("bundle_id", sa.String(length=200), nullable=False),
        sa.Column("champion_bundle_id", sa.String(length=200), nullable=True),
        sa.Column("champion_label", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_shadow_predictions_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_predictions")),
    )
    with op.batch_alter_table("shadow_predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shadow_predictions_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_shadow_predictions_bundle_id"), ["bundle_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shadow_predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shadow_predictions_bundle_id"))
        batch_op.drop_index(batch_op.f("ix_shadow_predictions_ticket_id"))
    op.drop_table("shadow_predictions")
