"""``jit-bot import azure``, end to end: read the subscriptions' role assignments, put
them in the import's own words, and hand them to the shared part (bot.importer.propose).

Read-only: the only Azure calls made are the readers' (reading.py, directory.py).
Errors the user can fix (a subscription that does not exist or cannot be read,
credentials Azure refuses, a bad --environments file, an unwritable output directory)
become one clear line and exit status 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.importer.access import Imported
from bot.importer.azure.convert import held_scopes, imported
from bot.importer.azure.environments import check_choice, environments
from bot.importer.azure.reading import read_estate
from bot.importer.mining import Progress
from bot.importer.propose import Options
from bot.importer.running import run_import
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

    def read() -> Imported:
        check_choice(choice)  # a bad mapping file fails before Azure is asked
        api = AzureApi(AzureClients.from_environ(environ), RETRY)
        estate = read_estate(api, subscriptions)
        return imported(estate, environments(choice, estate, held_scopes(estate)))

    return run_import("azure", read, output, options, progress)
