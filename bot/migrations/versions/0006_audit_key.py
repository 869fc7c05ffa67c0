"""which key signed each audit event

Revision ID: 0006
Revises: 0005

Events from before this revision keep their unkeyed SHA-256 hashes (key_id NULL); the
bot's first keyed event records the change of key and covers them through its HMAC.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("key_id")
