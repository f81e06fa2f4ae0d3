"""Self-service portal visits and events (shown / opened / solved / submitted, control group).

Revision ID: 0002_portal
Revises: 0001
Create Date: 2026-11-27 04:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Registers the tables on the store's metadata in every process that migrates, so the
# metadata-versus-migrations check sees them even where nothing else imported the module.
import triage.store.portal_events  # noqa: F401,E402

revision = "0002_portal"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(length=320), nullable=True),
        sa.Column("control", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("solved_article", sa.String(length=200), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_portal_visits_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_visits")),
    )
    with op.batch_alter_table("portal_visits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_visits_visitor"), ["visitor"], unique=False)
    op.create_table(
        "portal_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("article_id", sa.String(length=200), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["portal_visits.id"],
            name=op.f("fk_portal_events_visit_id_portal_visits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_events")),
    )
    with op.batch_alter_table("portal_events", schema=None) as batch_op:
        batch_op.create_index("ix_portal_events_article", ["article_id", "kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_portal_events_visit_id"), ["visit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("portal_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_events_visit_id"))
        batch_op.drop_index("ix_portal_events_article")
    op.drop_table("portal_events")
    with op.batch_alter_table("portal_visits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_visits_visitor"))
    op.drop_table("portal_visits")
