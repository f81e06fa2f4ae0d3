"""The fleet's champion in the shared database: archived bundles and the pointer history.

Revision ID: 0010_fleet
Revises: 0009_mail
Create Date: 2026-12-01 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0010_fleet"
down_revision = "0009_mail"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_bundles",
        sa.Column("bundle_id", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bundle_id", name=op.f("pk_fleet_bundles")),
    )
    op.create_table(
        "fleet_champion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bundle_id", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bundle_id"], ["fleet_bundles.bundle_id"], name=op.f("fk_fleet_champion_bundle_id_fleet_bundles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_champion")),
    )


def downgrade() -> None:
    op.drop_table("fleet_champion")
    op.drop_table("fleet_bundles")
