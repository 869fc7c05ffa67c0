"""index one person's live requests by email, for a backlog of thousands of live grants

Revision ID: 0015
Revises: 0014

When access ends, the bot asks which other live request of the same person (by email,
the principal access is granted to) still needs it. The email-only index found every
request the person ever made, and SQLite, which keeps no statistics, preferred to walk
every live grant by status instead: with 60,000 live grants each batch of the sweeper's
revocations spent 0.2 s there, and recovery from a long outage grew with the square of the
backlog. An index on email and status finds just the person's live requests, and it
serves the email-only lookups as well, so it replaces that index.
"""

from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    op.create_index(
        "ix_access_request_requester_email_status",
        "access_request",
        ["requester_email", "status"],
    )
    op.drop_index("ix_access_request_requester_email", table_name="access_request")


def downgrade() -> None:
    op.create_index("ix_access_request_requester_email", "access_request", ["requester_email"])
    op.drop_index("ix_access_request_requester_email_status", table_name="access_request")
