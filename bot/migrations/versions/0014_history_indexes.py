"""index the reads that a year of history would otherwise slow down

Revision ID: 0014
Revises: 0013

A year of use leaves a million finished requests behind; the bot's everyday reads touch
only the few that are live, or one person's last few. Each gets an index that starts
where it looks:

- one person's requests by when they were asked (``/jit list``'s "Recently finished",
  the App Home's recent requests, the per-person quotas), and by status (their open
  requests: the few that are not finished, not their whole history);
- requests by status and expiry (the sweeper's overdue grants, the timers rebuilt at
  start-up, the nudge before an expiry): the status-only and expiry-only indexes they
  replace would leave a query to walk every finished request whose expiry has passed;
- targets by status (the failed grants whose rollback a cloud refused, found from the
  targets still to take back rather than from every failed request);
- audit events by action and time (how many syncs someone asked for in the last hour).
"""

from alembic import op

revision = "0014"
down_revision = "0013"

_REPLACED = (
    "ix_access_request_requester_id",
    "ix_access_request_status",
    "ix_access_request_expires_at",
)


def upgrade() -> None:
    op.create_index(
        "ix_access_request_requester_id_created_at",
        "access_request",
        ["requester_id", "created_at"],
    )
    op.create_index(
        "ix_access_request_requester_id_status", "access_request", ["requester_id", "status"]
    )
    op.create_index(
        "ix_access_request_status_expires_at", "access_request", ["status", "expires_at"]
    )
    for name in _REPLACED:
        op.drop_index(name, table_name="access_request")
    op.create_index("ix_request_target_status", "request_target", ["status"])
    op.create_index("ix_audit_event_action_at", "audit_event", ["action", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_action_at", table_name="audit_event")
    op.drop_index("ix_request_target_status", table_name="request_target")
    op.create_index("ix_access_request_expires_at", "access_request", ["expires_at"])
    op.create_index("ix_access_request_status", "access_request", ["status"])
    op.create_index("ix_access_request_requester_id", "access_request", ["requester_id"])
    for name in (
        "ix_access_request_status_expires_at",
        "ix_access_request_requester_id_status",
        "ix_access_request_requester_id_created_at",
    ):
        op.drop_index(name, table_name="access_request")
