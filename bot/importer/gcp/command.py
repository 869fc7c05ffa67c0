"""``jit-bot import gcp``, end to end: read the resource tree's IAM, put it in the
import's own words, and hand it to the shared part (bot.importer.propose).

Read-only: the only Google calls made are the reader's (reading.py). Errors the user can
fix (credentials Google refuses, a node that does not exist or cannot be read, a bad
--environments file, an unwritable output directory) become one clear line and exit
status 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.clock import SystemClock
from bot.google_groups import GoogleGroups
from bot.importer.access import Imported
from bot.importer.gcp.capabilities import ORGANIZATION_PLACEHOLDER
from bot.importer.gcp.convert import custom_roles_parent, imported
from bot.importer.gcp.environments import environments, is_file, read_mapping
from bot.importer.gcp.reading import EstateError, import_hint, read_estate
from bot.importer.mining import Progress
from bot.importer.propose import Options
from bot.importer.running import run_import
from providers.gcp.auth import CLOUD_PLATFORM, GcpClients, GoogleAuth
from providers.gcp.calls import RETRY, GoogleCalls
from providers.gcp.target import DomainMap


def import_gcp(
    node: str,
    output: Path,
    choice: str,
    environ: Mapping[str, str],
    options: Options,
    progress: Progress | None = None,
) -> int:
    """``node``: organizations/N, folders/N or projects/ID. Exit status: 0 written, 2 the
    estate or the options cannot be used."""

    def read() -> Imported:
        domains = _domains(environ)
        if is_file(choice):
            read_mapping(Path(choice))  # a bad mapping file fails before Google is asked
        estate = read_estate(
            _clients(environ),
            GoogleCalls(RETRY, hint=import_hint),
            GoogleGroups.from_environ(environ, SystemClock()),
            node,
        )
        if options.consolidate and ORGANIZATION_PLACEHOLDER in custom_roles_parent(estate):
            raise EstateError(
                f"--consolidate: no organization above {estate.node} could be read, and the "
                "merged custom roles are to be created in it; run without --consolidate, or "
                "with credentials that may read the folders above (resourcemanager.folders.get)"
            )
        bound = {b.resource for b in estate.bindings}
        environment = environments(choice, estate, bound)
        return imported(estate, environment, domains)

    return run_import("gcp", read, output, options, progress)


def _clients(environ: Mapping[str, str]) -> GcpClients:
    """The provider's clients, with its credentials (ADC, a key file, impersonation) and
    endpoints, as GcpProvider.from_environ builds them."""
    auth = GoogleAuth.from_environ(environ)
    return GcpClients(
        lambda: auth.credentials([CLOUD_PLATFORM]),
        api_endpoint=environ.get("JIT_GCP_ENDPOINT") or None,
        iam_endpoint=environ.get("JIT_GCP_IAM_ENDPOINT") or None,
    )


def _domains(environ: Mapping[str, str]) -> DomainMap:
    try:
        return DomainMap.parse(environ.get("JIT_GCP_DOMAIN_MAP", ""))
    except ValueError as exc:
        raise EstateError(str(exc)) from None
