"""remember who has opened the bot's Home tab

Revision ID: 0013
Revises: 0012

A Home is re-published when a request that concerns its viewer changes; only the Homes
of people who have opened it at least once are, so nobody else costs a Slack call.
``admin`` is whether the viewer was an admin when they last opened it: their Home also
shows everyone's active access, refreshed when access starts or ends. ``notice`` is what
their last click on the Home did, shown on it until they open it again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.create_table(
        "home_viewer",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("notice", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("home_viewer")
