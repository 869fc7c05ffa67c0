"""remember which Slack interaction stored each request

Revision ID: 0005
Revises: 0004

A slash command or modal submission delivered twice (a retrying proxy, a replay routed
to another replica) carries the same trigger_id: the unique origin makes it one request.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_access_request_origin"), ["origin"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_request_origin"))
        batch_op.drop_column("origin")
