"""The ``azure`` provider: an Azure role on subscriptions, resource groups or resources.

- ``target``: what a roles.yaml entry may say;
- ``api``: the clients, Azure's errors and every call's retries (one `RETRY` policy);
- ``graph``: Microsoft Entra ID users, through Microsoft Graph;
- ``rbac``: role definitions and plain role assignments;
- ``pim``: PIM schedule requests that Azure ends by itself;
- ``provider``: `AzureProvider`, composing them.
"""

from providers.azure.api import (
    ARM_ENDPOINT,
    GRAPH_ENDPOINT,
    RETRY,
    RETRY_AFTER_CAP_SECONDS,
    AzureClients,
    AzureFailure,
    _retry_after,
)
from providers.azure.graph import UnknownUser
from providers.azure.pim import _iso_duration
from providers.azure.provider import AzureProvider
from providers.azure.rbac import MARKER
from providers.azure.target import AzureTarget

__all__ = [
    "ARM_ENDPOINT",
    "GRAPH_ENDPOINT",
    "MARKER",
    "RETRY",
    "RETRY_AFTER_CAP_SECONDS",
    "AzureClients",
    "AzureFailure",
    "AzureProvider",
    "AzureTarget",
    "UnknownUser",
    "_iso_duration",
    "_retry_after",
]
