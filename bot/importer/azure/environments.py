"""Which environment each scope belongs to: its subscription's name (the default,
``name``), a tag (``tag:KEY``), or a mapping file of ``<scope> <environment>`` lines.

Resource groups and resources take their subscription's environment under ``name``:
resource group names ("rg-payments-weu-01") seldom are environment names, and a team
whose are says so in a file. Under ``tag:KEY`` a resource group's own tag wins over its
subscription's (a resource takes its group's, as resources' tags are not read). In a
file the nearest line wins: a resource group's line over its subscription's.

Environment names become keys of roles.yaml, so they are made valid names there (lower
case, letters, digits, ``-`` and ``_``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bot.importer import mapping_file
from bot.importer.azure.estate import Estate
from bot.importer.azure.scopes import GUID, canonical, group_key, parts
from bot.importer.mapping_file import EnvironmentsError
from bot.importer.naming import valid_name

UNTAGGED = "untagged"
_EXPECTED = (
    "'<scope> <environment>' on each line, the scope /subscriptions/<id>, "
    "/subscriptions/<id>/resourceGroups/<name> or a subscription id"
)


def check_choice(choice: str) -> None:
    """Fails before Azure is asked when ``choice`` cannot be used."""
    if choice == "name":
        return
    if choice.startswith("tag:"):
        if not choice[4:]:
            raise EnvironmentsError("--environments tag:KEY needs a tag key, e.g. tag:env")
        return
    read_mapping(Path(choice))


def environments(choice: str, estate: Estate, scopes: Iterable[str]) -> dict[str, str]:
    """Scope → environment, as ``choice`` (``name``, ``tag:KEY`` or a file) says."""
    listed = sorted(set(scopes))
    if choice == "name":
        return {s: valid_name(estate.subscriptions[parts(s)[0]].name) for s in listed}
    if choice.startswith("tag:"):
        check_choice(choice)
        return {s: valid_name(_tag(estate, s, choice[4:]) or UNTAGGED) for s in listed}
    mapping = read_mapping(Path(choice))
    found = {s: _nearest(mapping, s) for s in listed}
    missing = [s for s, env in found.items() if env is None]
    if missing:
        raise EnvironmentsError(
            f"{choice}: no environment for {', '.join(missing[:5])}"
            f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}; "
            "expected a line for each subscription (or for each of its resource groups)"
        )
    return {s: env for s, env in found.items() if env is not None}


def _tag(estate: Estate, scope: str, key: str) -> str | None:
    subscription, group, _ = parts(scope)
    if group is not None:
        found = estate.resource_groups.get(group_key(subscription, group))
        if found is not None and found.tags.get(key):
            return found.tags[key]
    return estate.subscriptions[subscription].tags.get(key)


def _nearest(mapping: dict[str, str], scope: str) -> str | None:
    subscription, group, resource = parts(scope)
    candidates = [f"/subscriptions/{subscription}"]
    if group is not None:
        candidates.append(group_key(subscription, group))
    if resource is not None:
        candidates.append(scope.lower())
    for candidate in reversed(candidates):
        if candidate.lower() in mapping:
            return mapping[candidate.lower()]
    return None


def read_mapping(path: Path) -> dict[str, str]:
    """Lower-case scope → environment, a ``<scope> <environment>`` line each."""
    return mapping_file.read_mapping(
        path,
        lambda text: scope.lower() if (scope := _scope(text)) else None,
        _EXPECTED,
        "name, tag:KEY or a file of '<scope> <environment>' lines",
    )


def _scope(text: str) -> str | None:
    if GUID.match(text):
        return f"/subscriptions/{text.lower()}"
    return canonical(text)
