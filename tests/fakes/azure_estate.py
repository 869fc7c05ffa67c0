"""A chaotic Azure estate in the fake, the kind ``jit-bot import azure`` is for.

- per-subscription copies: "VM Operator (Contoso Production)" assignable on the prod
  subscription, "vm operator - <dev subscription id>" on dev, the same actions in
  another case and order;
- action-level custom roles that belong together: Storage Key Reader, Log Query and
  Web App Restart, held together by the developers group on app-dev (and Storage Key
  Reader alone by dave);
- a duplicate: "Break Glass Admin", every action, as Owner;
- a dead custom role: Legacy Backup Operator, assigned to nobody;
- user and group assignments on both subscriptions, their resource groups and a storage
  account; the sre group holds Reader through a nested group too;
- assignments that are not people's: a service principal's, a group of another tenant's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from tests.fakes.azure import (
    OTHER_SUBSCRIPTION,
    OWNER,
    READER,
    SUBSCRIPTION,
    FakeAzure,
)

PROD = f"/subscriptions/{SUBSCRIPTION}"
DEV = f"/subscriptions/{OTHER_SUBSCRIPTION}"
PROD_RG = f"{PROD}/resourceGroups/prod"
APP_DEV = f"{DEV}/resourceGroups/app-dev"
DATA_DEV = f"{DEV}/resourceGroups/Data-Dev"
LOGS = f"{PROD_RG}/providers/Microsoft.Storage/storageAccounts/prodlogs"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")
DOMAIN = "example.com"
_VM = [
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Compute/virtualMachines/restart/action",
]


@dataclass
class ChaoticAzure:
    roles: dict[str, str] = field(default_factory=dict)  # name → guid (custom roles)
    users: dict[str, str] = field(default_factory=dict)  # email → object id
    groups: dict[str, str] = field(default_factory=dict)  # name → object id
    people_assignments: int = 0  # assignments to users and groups of this tenant
    other_assignments: int = 0  # to a service principal and a foreign group


def seed_chaos(fake: FakeAzure) -> ChaoticAzure:
    """Reset the fake, then build the estate; returns what it made."""
    fake.reset()
    estate = ChaoticAzure()
    fake.add_scope(PROD, name="Contoso Production", tags={"env": "prod"})
    fake.add_scope(PROD_RG, tags={"env": "prod"})
    fake.add_scope(DEV, name="Contoso Dev", tags={"env": "dev"})
    fake.add_scope(APP_DEV)
    fake.add_scope(DATA_DEV, tags={"env": "data"})
    for subscription in (PROD, DEV):
        fake.grant_rights(subscription)  # the bot's own, for the live check of the drafts
    _people(fake, estate)
    _roles(fake, estate)
    role, user, group = estate.roles, estate.users, estate.groups
    _assign(fake, estate, user["alice@example.com"], OWNER, PROD)
    _assign(fake, estate, user["alice@example.com"], role["Break Glass Admin"], DEV)
    _assign(fake, estate, group["sre"], READER, PROD)
    _assign(fake, estate, group["sre"], role["VM Operator (Contoso Production)"], PROD_RG)
    _assign(fake, estate, group["sre"], role[f"vm operator - {OTHER_SUBSCRIPTION}"], APP_DEV)
    for name in ("Storage Key Reader", "Log Query", "Web App Restart"):
        _assign(fake, estate, group["developers"], role[name], APP_DEV)
    _assign(fake, estate, user["dave@example.com"], role["Storage Key Reader"], APP_DEV)
    _assign(fake, estate, user["dave@example.com"], READER, DATA_DEV)
    _assign(fake, estate, user["carol@example.com"], STORAGE_BLOB_DATA_READER, LOGS)
    pipeline = fake.add_service_principal("deploy-pipeline")
    fake.assign(pipeline, CONTRIBUTOR, DEV)
    fake.assign(str(uuid.uuid4()), READER, PROD)  # a group of a partner's tenant
    estate.other_assignments = 2
    return estate


def _people(fake: FakeAzure, estate: ChaoticAzure) -> None:
    for person in PEOPLE:
        # frank's user principal name is the tenant's; his mail is what names him
        upn = f"{person}@contoso.onmicrosoft.com" if person == "frank" else f"{person}@{DOMAIN}"
        estate.users[f"{person}@{DOMAIN}"] = fake.add_user(upn, mail=f"{person}@{DOMAIN}")
    users = estate.users
    estate.groups["developers"] = fake.add_group(
        "developers", [users["bob@example.com"], users["carol@example.com"]]
    )
    oncall = fake.add_group("oncall", [users["frank@example.com"]])
    estate.groups["oncall"] = oncall
    estate.groups["sre"] = fake.add_group(
        "sre", [users["alice@example.com"], users["erin@example.com"], oncall]
    )


def _roles(fake: FakeAzure, estate: ChaoticAzure) -> None:
    specs: dict[str, tuple[list[str], list[dict[str, list[str]]]]] = {
        "VM Operator (Contoso Production)": ([PROD], [{"actions": _VM}]),
        f"vm operator - {OTHER_SUBSCRIPTION}": (
            [DEV],
            [{"actions": [a.lower() for a in reversed(_VM)]}],
        ),
        "Storage Key Reader": (
            [DEV],
            [{"actions": ["Microsoft.Storage/storageAccounts/listKeys/action"]}],
        ),
        "Log Query": (
            [DEV],
            [{"actions": ["Microsoft.OperationalInsights/workspaces/query/read"]}],
        ),
        "Web App Restart": ([DEV], [{"actions": ["Microsoft.Web/sites/restart/action"]}]),
        "Break Glass Admin": ([PROD, DEV], [{"actions": ["*"]}]),
        "Legacy Backup Operator": (
            [DEV],
            [{"actions": ["Microsoft.RecoveryServices/Vaults/backupJobs/*"]}],
        ),
    }
    for name, (assignable, permissions) in specs.items():
        estate.roles[name] = fake.add_custom_role(name, assignable, permissions)


def _assign(fake: FakeAzure, estate: ChaoticAzure, principal: str, role: str, scope: str) -> None:
    fake.assign(principal, role, scope)
    estate.people_assignments += 1
