"""record who exactly receives access and who exactly voted

Revision ID: 0007
Revises: 0006

A target's ``principal`` is the cloud identity the provider granted to (an Identity
Store user id, an Entra object id, a Google account), shown to approvers and kept with
the grant. A vote's ``voter_email`` is the email of the Slack account that cast it: two
accounts of one person must count once, and that is decided by email, not Slack id.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("request_target", schema=None) as batch_op:
        batch_op.add_column(sa.Column("principal", sa.String(length=320), nullable=True))
    with op.batch_alter_table("vote", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voter_email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vote", schema=None) as batch_op:
        batch_op.drop_column("voter_email")
    with op.batch_alter_table("request_target", schema=None) as batch_op:
        batch_op.drop_column("principal")
