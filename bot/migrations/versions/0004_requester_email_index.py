"""index access requests by requester email

Revision ID: 0004
Revises: 0003

"Does another active grant of this person hold the same access?" is asked on every
revocation; it starts from the person's own requests, a handful, instead of every
grant of a popular target.
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_request_requester_email"), ["requester_email"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_request_requester_email"))
