"""Mail both ways: the outbox carries mail; received mail, refusals, attachments, satisfaction,
sign-in links and page sessions.

Revision ID: 0009_mail
Revises: 0008_ticket_search
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Registers the tables on the store's metadata in every process that migrates.
import triage.store.attachments  # noqa: F401,E402
import triage.store.mail_log  # noqa: F401,E402
import triage.store.satisfaction  # noqa: F401,E402
import triage.store.signin  # noqa: F401,E402

revision = "0009_mail"
down_revision = "0008_ticket_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=20), nullable=False, server_default="webhook"))
        batch_op.add_column(sa.Column("ticket_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("message_id", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=300), nullable=True))
        batch_op.alter_column("webhook_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f("ix_outbox_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_message_id"), ["message_id"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_outbox_dedupe_key"), ["dedupe_key"])
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_ticket_id_tickets"), "tickets", ["ticket_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("kind", existing_type=sa.String(length=20), server_default=None)

    op.create_table(
        "received_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_received_mail_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_mail")),
    )
    with op.batch_alter_table("received_mail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_received_mail_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_received_mail_raw_sha256"), ["raw_sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_received_mail_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "mail_refusals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(), nullable=True),
        sa.Column("replay_result", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_refusals")),
    )
    with op.batch_alter_table("mail_refusals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_refusals_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mail_refusals_raw_sha256"), ["raw_sha256"], unique=False)

    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_attachments_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "satisfaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=True),
        sa.Column("agent", sa.String(length=100), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_satisfaction_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_satisfaction")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_satisfaction_ticket_id")),
        sa.UniqueConstraint("token", name=op.f("uq_satisfaction_token")),
    )

    op.create_table(
        "signin_links",
        sa.Column("nonce_sha256", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("nonce_sha256", name=op.f("pk_signin_links")),
    )
    with op.batch_alter_table("signin_links", schema=None) as batch_op:
        batch_op.create_index("ix_signin_links_address", ["address", "created_at"], unique=False)
        batch_op.create_index("ix_signin_links_client", ["client", "created_at"], unique=False)

    op.create_table(
        "page_sessions",
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_page_sessions")),
    )
    with op.batch_alter_table("page_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_page_sessions_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    for table in (
        "page_sessions",
        "signin_links",
        "satisfaction",
        "attachments",
        "mail_refusals",
        "received_mail",
    ):
        op.drop_table(table)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbox_ticket_id_tickets"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_outbox_dedupe_key"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_outbox_message_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_ticket_id"))
        batch_op.alter_column("webhook_id", existing_type=sa.Integer(), nullable=False)
        for column in ("dedupe_key", "message_id", "ticket_id", "kind"):
            batch_op.drop_column(column)
