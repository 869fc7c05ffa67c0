"""The ``aws`` provider: IAM Identity Center permission sets on AWS accounts.

- ``target``: what a roles.yaml entry may say;
- ``calls``: boto3 clients, retries (one `RETRY` policy) and polling;
- ``lookups``: instances, permission sets, OU accounts and users, cached;
- ``provider``: `AwsProvider`, granting and revoking with them.
"""

from providers.aws.calls import RETRY, AwsClients, AwsCredentials
from providers.aws.provider import AwsProvider
from providers.aws.target import AwsTarget

__all__ = ["RETRY", "AwsClients", "AwsCredentials", "AwsProvider", "AwsTarget"]
