"""who is told of a request without deciding it, and when its approvers are reminded and
the request escalated

Revision ID: 0012
Revises: 0011

``quiet_approvers`` may decide but get no DM; ``watchers`` are told without buttons.
``next_reminder_at``/``reminded_at`` and ``escalate_at``/``escalated_at`` are claimed by
compare-and-set, so a restart or a second replica reminds and escalates once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("quiet_approvers", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("watchers", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("next_reminder_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("escalate_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_access_request_next_reminder_at"), ["next_reminder_at"]
        )
        batch_op.create_index(batch_op.f("ix_access_request_escalate_at"), ["escalate_at"])


def downgrade() -> None:
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_request_escalate_at"))
        batch_op.drop_index(batch_op.f("ix_access_request_next_reminder_at"))
        for column in (
            "escalated_at",
            "escalate_at",
            "reminded_at",
            "next_reminder_at",
            "watchers",
            "quiet_approvers",
        ):
            batch_op.drop_column(column)
