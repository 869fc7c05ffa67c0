"""A chaotic IAM Identity Center estate in moto, the kind ``jit-bot import aws`` is for.

- per-account copies: ProdReadOnly-<id> on each prod account, the same policy but for
  the account id in a resource;
- action-level sets that belong together: s3-read-logs, ec2-stop, logs-tail, held
  together by the developers group (and s3-read-logs alone by dave);
- an exact duplicate: Admin and AdminCopy (AdministratorAccess both, under one
  permissions boundary);
- a dead set: Unused, assigned to nobody;
- user and group assignments across the prod and dev OUs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.aws import MotoAws

PEOPLE = ("alice", "bob", "carol", "dave", "erin")
DOMAIN = "example.com"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


@dataclass
class ChaoticEstate:
    instance_arn: str
    store_id: str
    accounts: dict[str, str] = field(default_factory=dict)  # name → id
    permission_sets: dict[str, str] = field(default_factory=dict)  # name → ARN
    users: dict[str, str] = field(default_factory=dict)  # email → user id
    groups: dict[str, str] = field(default_factory=dict)  # name → group id
    assignments: int = 0


def _inline(*statements: tuple[list[str], str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": actions, "Resource": resource}
                for actions, resource in statements
            ],
        }
    )


def seed_chaos(moto: MotoAws) -> ChaoticEstate:
    """Reset moto, then build the estate; returns what it made."""
    moto.reset()
    sso = moto.client("sso-admin")
    instance = sso.list_instances()["Instances"][0]
    estate = ChaoticEstate(instance["InstanceArn"], instance["IdentityStoreId"])
    _organization(moto, estate)
    _people(moto, estate)
    account = estate.accounts
    sets: dict[str, dict[str, Any]] = {
        f"ProdReadOnly-{account['prod-a']}": {"account": "prod-a"},
        f"ProdReadOnly-{account['prod-b']}": {"account": "prod-b"},
        "s3-read-logs": {"inline": _inline((["s3:GetObject"], "arn:aws:s3:::app-logs/*"))},
        "ec2-stop": {"inline": _inline((["ec2:StopInstances"], "*"))},
        "logs-tail": {"inline": _inline((["logs:FilterLogEvents"], "*"))},
        "Admin": {"managed": ADMIN, "boundary": "no-iam-users"},
        "AdminCopy": {"managed": ADMIN, "boundary": "no-iam-users"},
        "Unused": {"inline": _inline((["kms:Decrypt"], "*")), "customer": "legacy-kms"},
    }
    for name, spec in sets.items():
        if "account" in spec:  # a per-account copy: the account's own id in its resource
            spec["managed"] = "arn:aws:iam::aws:policy/ReadOnlyAccess"
            bucket = f"arn:aws:s3:::audit-{account[spec['account']]}/*"
            spec["inline"] = _inline((["s3:GetObject"], bucket))
        estate.permission_sets[name] = _permission_set(moto, estate, name, spec)
    for ps in ("s3-read-logs", "ec2-stop", "logs-tail"):
        for where in ("dev-a", "dev-b"):
            _assign(moto, estate, ps, where, "GROUP", estate.groups["developers"])
    _assign(moto, estate, "s3-read-logs", "dev-a", "USER", estate.users["dave@example.com"])
    for where in ("prod-a", "prod-b"):
        _assign(
            moto, estate, f"ProdReadOnly-{account[where]}", where, "GROUP", estate.groups["sre"]
        )
    _assign(moto, estate, "Admin", "prod-a", "USER", estate.users["alice@example.com"])
    _assign(moto, estate, "AdminCopy", "prod-b", "USER", estate.users["alice@example.com"])
    return estate


def _organization(moto: MotoAws, estate: ChaoticEstate) -> None:
    org = moto.client("organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    ous = {
        name: org.create_organizational_unit(ParentId=root, Name=name)["OrganizationalUnit"]["Id"]
        for name in ("prod", "dev")
    }
    for name, ou in (
        ("shared", None),
        ("prod-a", "prod"),
        ("prod-b", "prod"),
        ("dev-a", "dev"),
        ("dev-b", "dev"),
    ):
        created = org.create_account(Email=f"{name}@aws.{DOMAIN}", AccountName=name)
        account_id = created["CreateAccountStatus"]["AccountId"]
        estate.accounts[name] = account_id
        org.tag_resource(ResourceId=account_id, Tags=[{"Key": "env", "Value": ou or "shared"}])
        if ou:
            org.move_account(AccountId=account_id, SourceParentId=root, DestinationParentId=ous[ou])


def _people(moto: MotoAws, estate: ChaoticEstate) -> None:
    store = moto.client("identitystore")
    for person in PEOPLE:
        email = f"{person}@{DOMAIN}"
        estate.users[email] = store.create_user(
            IdentityStoreId=estate.store_id,
            UserName=person,
            DisplayName=person,
            Name={"GivenName": person, "FamilyName": "Test"},
            Emails=[{"Value": email, "Type": "work", "Primary": True}],
        )["UserId"]
    for group, people in (("developers", ("bob", "carol")), ("sre", ("alice", "erin"))):
        group_id = store.create_group(IdentityStoreId=estate.store_id, DisplayName=group)["GroupId"]
        estate.groups[group] = group_id
        for person in people:
            store.create_group_membership(
                IdentityStoreId=estate.store_id,
                GroupId=group_id,
                MemberId={"UserId": estate.users[f"{person}@{DOMAIN}"]},
            )


def _permission_set(moto: MotoAws, estate: ChaoticEstate, name: str, spec: dict[str, Any]) -> str:
    sso = moto.client("sso-admin")
    arn: str = sso.create_permission_set(
        Name=name, InstanceArn=estate.instance_arn, SessionDuration="PT2H"
    )["PermissionSet"]["PermissionSetArn"]
    which = {"InstanceArn": estate.instance_arn, "PermissionSetArn": arn}
    if "managed" in spec:
        sso.attach_managed_policy_to_permission_set(**which, ManagedPolicyArn=spec["managed"])
    if "inline" in spec:
        sso.put_inline_policy_to_permission_set(**which, InlinePolicy=spec["inline"])
    if "customer" in spec:
        sso.attach_customer_managed_policy_reference_to_permission_set(
            **which, CustomerManagedPolicyReference={"Name": spec["customer"], "Path": "/"}
        )
    if "boundary" in spec:
        reference = {"Name": spec["boundary"], "Path": "/"}
        sso.put_permissions_boundary_to_permission_set(
            **which, PermissionsBoundary={"CustomerManagedPolicyReference": reference}
        )
    return arn


def _assign(
    moto: MotoAws, estate: ChaoticEstate, ps: str, account: str, kind: str, principal: str
) -> None:
    moto.client("sso-admin").create_account_assignment(
        InstanceArn=estate.instance_arn,
        TargetId=estate.accounts[account],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=estate.permission_sets[ps],
        PrincipalType=kind,
        PrincipalId=principal,
    )
    estate.assignments += 1
