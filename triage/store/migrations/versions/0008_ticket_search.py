"""Full-text search over tickets: SQLite FTS5 table + triggers, PostgreSQL GIN tsvector index.

Revision ID: 0008_ticket_search
Revises: 0007_desk
Create Date: 2026-12-01 22:10:00

Both stem English words (porter / 'english'), so "printers" finds "printer".
The FTS5 table holds no copy of the text (external content: ``tickets``); the
triggers keep its index in step with every insert, update and delete.
"""

from __future__ import annotations

from alembic import op

revision = "0008_ticket_search"
down_revision = "0007_desk"
branch_labels = None
depends_on = None

SQLITE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS tickets_fts USING fts5(subject, body, content='tickets', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS tickets_fts_ai AFTER INSERT ON tickets BEGIN "
    "INSERT INTO tickets_fts(rowid, subject, body) VALUES (new.id, new.subject, new.body); END",
    "CREATE TRIGGER IF NOT EXISTS tickets_fts_ad AFTER DELETE ON tickets BEGIN "
    "INSERT INTO tickets_fts(tickets_fts, rowid, subject, body) "
    "VALUES ('delete', old.id, old.subject, old.body); END",
    "CREATE TRIGGER IF NOT EXISTS tickets_fts_au AFTER UPDATE OF subject, body ON tickets BEGIN "
    "INSERT INTO tickets_fts(tickets_fts, rowid, subject, body) "
    "VALUES ('delete', old.id, old.subject, old.body); "
    "INSERT INTO tickets_fts(rowid, subject, body) VALUES (new.id, new.subject, new.body); END",
    "INSERT INTO tickets_fts(tickets_fts) VALUES ('rebuild')",
]
POSTGRES = [
    "CREATE INDEX IF NOT EXISTS ix_tickets_fulltext ON tickets USING gin "
    "(to_tsvector('english'::regconfig, coalesce(subject, '') || ' ' || coalesce(body, '')))",
]


def upgrade() -> None:
    for statement in SQLITE if op.get_bind().dialect.name == "sqlite" else POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("tickets_fts_ai", "tickets_fts_ad", "tickets_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS tickets_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_tickets_fulltext")
