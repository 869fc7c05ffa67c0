"""The ``gcp`` provider: an IAM role on GCP projects, folders or an organization.

- ``target``: what a roles.yaml entry may say, and the Slack-to-Google domain map;
- ``auth``: Google credentials and clients (bot/google_groups.py uses them too);
- ``calls``: every call retried under one `RETRY` policy, Google's errors translated;
- ``bindings``: the conditional bindings jit-bot writes and reads back;
- ``provider``: `GcpProvider`, the read-modify-write of IAM policies.
"""

from providers.gcp.auth import CLOUD_PLATFORM, GcpClients, GoogleAuth
from providers.gcp.bindings import POLICY_VERSION, TITLE_PREFIX, condition_title, expiry_of
from providers.gcp.calls import RETRY
from providers.gcp.provider import CRM_PREFIX, GcpProvider
from providers.gcp.target import BASIC_ROLES, DomainMap, GcpTarget

__all__ = [
    "BASIC_ROLES",
    "CLOUD_PLATFORM",
    "CRM_PREFIX",
    "POLICY_VERSION",
    "RETRY",
    "TITLE_PREFIX",
    "DomainMap",
    "GcpClients",
    "GcpProvider",
    "GcpTarget",
    "GoogleAuth",
    "condition_title",
    "expiry_of",
]
