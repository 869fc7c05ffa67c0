"""link an extension to the access it extends, and remember the expiry last nudged about

Revision ID: 0011
Revises: 0010

An extension is a request of its own whose ``extends`` names the active request it asks
to keep longer; once applied, that request's expiry moves. ``max_total_seconds`` is the
role's maximum when it was asked (a total past it needs approvers' explicit approval).
``nudged_for`` is the expiry its requester was last told is near, so a restart or a
second replica nudges once per expiry, and again after an extension moves it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extends", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("max_total_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("nudged_for", sa.DateTime(timezone=True), nullable=True))
        # No foreign key: on SQLite adding one rebuilds the table, which the tables that
        # reference it forbid; the bot only ever writes the id of a request it loaded.
        batch_op.create_index(batch_op.f("ix_access_request_extends"), ["extends"])


def downgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_request_extends"))
        batch_op.drop_column("nudged_for")
        batch_op.drop_column("max_total_seconds")
        batch_op.drop_column("extends")
