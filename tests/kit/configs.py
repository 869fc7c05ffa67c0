"""The test workspace's configuration: its two roles (prod-support and db-admin) with
whichever targets a module needs, and the approval rules around them.

Modules that try a cloud (AWS, Azure) write the same two roles with that cloud's targets;
building them here keeps the roles one text, so a change to the workspace is made once."""

from __future__ import annotations


def target(provider: str, **fields: str) -> str:
    """One target of an environment, as ``roles_yaml`` takes it: ``- provider: …`` and
    its fields, one per line, each line after a newline and indented under the
    environment's name."""
    lines = [f"- provider: {provider}", *(f"  {key}: {value}" for key, value in fields.items())]
    return "".join(f"\n        {line}" for line in lines)


def webhook(name: str, url: str = "{url}") -> str:
    """A webhook target on the test's plain-http receiver, as ``target`` writes one;
    ``url`` stays a ``{url}`` placeholder, for the module to fill in, unless given."""
    return target(
        "webhook",
        name=name,
        url=url,
        allow_insecure="true  # the receiver is plain http on 127.0.0.1",
        secret_env="JIT_WEBHOOK_SECRET",
    )


def roles_yaml(
    *, prod: str, staging: str, db_prod: str, db_dev: str, db_admin_default: str | None = None
) -> str:
    """roles.yaml of the test workspace: prod-support (requested by @engineering, prod and
    staging) and db-admin (prod and dev); each environment's targets as ``target`` writes
    them, or written alike."""
    default = f"\n    default_duration: {db_admin_default}" if db_admin_default else ""
    return f"""
roles:
  prod-support:
    description: Troubleshoot production services
    max_duration: 4h
    default_duration: 1h
    requesters: ["@engineering"]
    environments:
      prod:{prod}
      staging:{staging}
  db-admin:
    description: Fix data by hand
    max_duration: 2h{default}
    environments:
      prod:{db_prod}
      dev:{db_dev}
"""


# The fake provider's targets: what most tests grant.
ROLES_YAML = roles_yaml(
    prod=target("fake", resource="prod-db") + target("fake", resource="prod-logs"),
    staging=target("fake", resource="staging-db"),
    db_prod=target("fake", resource="db-prod"),
    db_dev=target("fake", resource="db-dev"),
    db_admin_default="30m",
)

APPROVERS_YAML = """
groups:
  sre-leads: ["@sre-leads"]
  security: [USEC1, sec2@example.com]
rules:
  - environments: [dev]
    roles: ["*"]
    auto_approve: true
  - roles: [prod-support]
    environments: [prod]
    approvers: [sre-leads]
    required_approvals: 1
  - roles: [db-admin]
    environments: [prod]
    approvers: [sre-leads, security]
    required_approvals: 2
  - roles: ["*"]
    environments: ["*"]
    approvers: [security]
settings:
  pending_ttl: 1h
  allow_self_approval: false
  allowed_email_domains: [example.com]
"""

# approvers.yaml that approves every request at once: for tests about what happens after.
AUTO_APPROVE_ALL = """
groups:
  leads: ["@sre-leads"]
rules:
  - roles: ["*"]
    environments: ["*"]
    auto_approve: true
"""
