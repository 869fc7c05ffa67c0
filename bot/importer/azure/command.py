"""``jit-bot import azure``, end to end: read the subscriptions' role assignments, put
them in the import's own words, and hand them to the shared part (bot.importer.propose).

Read-only: the only Azure calls made are the readers' (reading.py, directory.py).
Errors the user can fix (a subscription that does not exist or cannot be read,
credentials Azure refuses, a bad --environments file, an unwritable output directory)
become one clear line and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.importer.azure.convert import held_scopes, imported
from bot.importer.azure.environments import EnvironmentsError, check_choice, environments
from bot.importer.azure.reading import EstateError, read_estate
from bot.importer.mining import Progress
from bot.importer.outputs import headline
from bot.importer.propose import NothingToPropose, Options, propose, write_outputs
from providers.azure.api import RETRY, AzureApi, AzureClients


def import_azure(
    output: Path,
    subscriptions: Sequence[str],
    choice: str,
    environ: Mapping[str, str],
    options: Options,
    progress: Progress | None = None,
) -> int:
    """Exit status: 0 written, 2 the estate or the options cannot be used."""
    try:
        check_choice(choice)  # a bad mapping file fails before Azure is asked
        api = AzureApi(AzureClients.from_environ(environ), RETRY)
        estate = read_estate(api, subscriptions)
        environment = environments(choice, estate, held_scopes(estate))
        outcome = propose(imported(estate, environment), options, progress)
    except (EstateError, EnvironmentsError, NothingToPropose) as exc:
        return _fail(str(exc))
    try:
        write_outputs(outcome, output)
    except OSError as exc:
        return _fail(f"cannot write {exc.filename or output}: {exc.strerror or exc}")
    print(headline(outcome))
    return 0


def _fail(message: str) -> int:
    print(f"jit-bot import azure: {message}", file=sys.stderr)
    return 2
