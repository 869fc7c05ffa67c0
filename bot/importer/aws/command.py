"""``jit-bot import aws``, end to end: read the estate, put it in the import's own words,
and hand it to the shared part (bot.importer.propose).

Read-only: the only AWS calls made are the reader's (reading.py). Errors the user can fix
become one clear line and exit status 2 (bot.importer.running).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError

from bot.importer.access import Imported
from bot.importer.aws.convert import imported
from bot.importer.aws.environments import environments
from bot.importer.aws.reading import EstateError, read_estate
from bot.importer.mining import Progress
from bot.importer.propose import Options
from bot.importer.running import run_import
from providers.aws.calls import RETRY, AwsCalls, AwsClients


def import_aws(
    output: Path,
    choice: str,
    environ: Mapping[str, str],
    options: Options,
    progress: Progress | None = None,
) -> int:
    """Exit status: 0 written, 2 the estate or the options cannot be used."""

    def read() -> Imported:
        if choice not in ("ou",) and not choice.startswith("tag:"):
            environments(choice, {})  # a bad mapping file fails before AWS is asked
        estate = read_estate(_clients(environ), AwsCalls(RETRY))
        return imported(estate, environments(choice, estate.accounts))

    return run_import("aws", read, output, options, progress)


def _clients(environ: Mapping[str, str]) -> AwsClients:
    """The provider's clients, once there are credentials to build them with: without
    any, every call would first be retried as a temporary failure."""
    try:
        if boto3.Session().get_credentials() is None:
            raise EstateError(
                "no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (and JIT_AWS_ASSUME_ROLE_ARN for a role to read through)"
            )
        return AwsClients.from_environ(environ)
    except BotoCoreError as exc:  # a profile that does not exist, a broken config file
        raise EstateError(f"AWS credentials: {exc}") from None
