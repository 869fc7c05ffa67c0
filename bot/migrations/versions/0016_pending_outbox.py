"""index the outbox's pending messages, for the look for due messages

Revision ID: 0016
Revises: 0015

The outbox looks for due messages after every commit that queued one: the first 200
pending messages in order. Sent messages stay in the table, fifteen or so per request, so
it holds millions after a year. PostgreSQL's generic plan for a prepared statement (which
psycopg prepares from its fifth run) cannot know that "pending" is rare, and walked the
primary key through every message ever sent to find the few pending ones: 35 ms with
200,000 sent. An index of the pending messages alone, in order, answers it at once
whatever the history; the look names the status as a constant, so every plan can use it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_message_pending",
        "outbox_message",
        ["id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_message_pending", table_name="outbox_message")
