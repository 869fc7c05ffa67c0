"""remember the post-incident review of each break-glass use

Revision ID: 0010
Revises: 0009

One row per break-glass request: who of the rule's approvers reviewed it, how, when and
with which note, and when the reviewers were last reminded (so that neither a restart nor
a second replica reminds twice in a day). Break-glass uses stored before this migration
are opened for review as they stand.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "break_glass_review",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=True),
        sa.Column("reviewer_id", sa.String(length=32), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["access_request.id"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    with op.batch_alter_table("break_glass_review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_break_glass_review_reminded_at"), ["reminded_at"])
    requests = sa.table(
        "access_request",
        sa.column("id", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("break_glass", sa.Boolean()),
    )
    reviews = sa.table(
        "break_glass_review",
        sa.column("request_id", sa.String()),
        sa.column("opened_at", sa.DateTime(timezone=True)),
        sa.column("reminded_at", sa.DateTime(timezone=True)),
    )
    # Reminded from now, not from when each was made: an upgrade must not remind every
    # break-glass ever stored at once.
    upgraded = sa.literal(datetime.now(UTC), sa.DateTime(timezone=True))
    earlier = sa.select(requests.c.id, requests.c.created_at, upgraded).where(
        requests.c.break_glass == sa.true()
    )
    op.execute(reviews.insert().from_select(["request_id", "opened_at", "reminded_at"], earlier))


def downgrade() -> None:
    with op.batch_alter_table("break_glass_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_break_glass_review_reminded_at"))
    op.drop_table("break_glass_review")
