"""record the denials that end a revoked grant's live sessions

Revision ID: 0008
Revises: 0007

An AWS role session outlives the assignment it was taken under; the Deny statement that
ends it is recorded here so that its removal, once the session duration has passed, is
leased, retried and survives restarts like any revocation.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "session_denial",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("scope", sa.String(length=400), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("principal_id", sa.String(length=200), nullable=False),
        sa.Column("before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lift_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["access_request.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "scope", name="uq_session_denial_request_scope"),
    )
    with op.batch_alter_table("session_denial", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_denial_request_id"), ["request_id"])
        batch_op.create_index(batch_op.f("ix_session_denial_scope"), ["scope"])
        batch_op.create_index(batch_op.f("ix_session_denial_lift_after"), ["lift_after"])
        batch_op.create_index(batch_op.f("ix_session_denial_status"), ["status"])


def downgrade() -> None:
    op.drop_table("session_denial")
