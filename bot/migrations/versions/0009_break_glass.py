"""remember which requests were break-glass, and for which incident

Revision ID: 0009
Revises: 0008

A break-glass request is granted at once, without approval; the flag marks it wherever
it is shown and counts it against the per-person quota, the incident says why.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("break_glass", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("incident", sa.String(length=100), nullable=True))
        batch_op.create_index(batch_op.f("ix_access_request_break_glass"), ["break_glass"])


def downgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_request_break_glass"))
        batch_op.drop_column("incident")
        batch_op.drop_column("break_glass")
