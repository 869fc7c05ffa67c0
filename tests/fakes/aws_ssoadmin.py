"""moto's Identity Center (sso-admin), made faithful where jit-bot's import reads it.

moto 5.2 keeps account assignments in one list and scans all of it for every
ListAccountAssignments: an estate of tens of thousands of assignments would measure moto
rather than the importer. And it knows nothing of which permission sets are provisioned
to which account: ListPermissionSetsProvisionedToAccount ignores its AccountId, and
ListAccountsForProvisionedPermissionSet always answers moto's own account.

AWS provisions a permission set to an account when the first assignment of it is created
there (CreateAccountAssignment does it) or when ProvisionPermissionSet names the account;
it stays provisioned when assignments are deleted. This module keeps that per backend, an
index of assignments by (instance, account, permission set), and answers both list calls
page by page (MaxResults up to 100, as AWS allows) with AWS's required parameters
checked. Imported by tests/fakes/aws.py, so every moto in the test kit has it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.ssoadmin.exceptions import ResourceNotFoundException
from moto.ssoadmin.models import AccountAssignment, SSOAdminBackend
from moto.ssoadmin.responses import SSOAdminResponse

PAGE = 100  # the largest MaxResults AWS accepts for these lists
Key = tuple[str, str, str]  # (instance ARN, account id, permission set ARN)


class ValidationException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message)


def _index(backend: SSOAdminBackend) -> dict[Key, list[AccountAssignment]]:
    found: dict[Key, list[AccountAssignment]] | None = backend.__dict__.get("_jit_index")
    if found is None:
        found = {}
        for a in backend.account_assignments:
            found.setdefault((a.instance_arn, a.target_id, a.permission_set_arn), []).append(a)
        backend.__dict__["_jit_index"] = found
    return found


def provisioned(backend: SSOAdminBackend) -> dict[tuple[str, str], dict[str, None]]:
    """(instance ARN, account id) → the permission set ARNs provisioned there, in order."""
    found: dict[tuple[str, str], dict[str, None]] = backend.__dict__.setdefault(
        "_jit_provisioned", {}
    )
    if not found:
        for a in backend.account_assignments:
            found.setdefault((a.instance_arn, a.target_id), {})[a.permission_set_arn] = None
    return found


_create = SSOAdminBackend.create_account_assignment
_delete = SSOAdminBackend.delete_account_assignment


def _create_account_assignment(self: SSOAdminBackend, *args: Any, **kwargs: Any) -> Any:
    index, ready = _index(self), provisioned(self)
    summary = _create(self, *args, **kwargs)
    added = self.account_assignments[-1]
    index.setdefault((added.instance_arn, added.target_id, added.permission_set_arn), []).append(
        added
    )
    ready.setdefault((added.instance_arn, added.target_id), {})[added.permission_set_arn] = None
    return summary


def _delete_account_assignment(self: SSOAdminBackend, *args: Any, **kwargs: Any) -> Any:
    provisioned(self)  # taken before the assignment goes: the set stays provisioned
    summary = _delete(self, *args, **kwargs)
    self.__dict__.pop("_jit_index", None)
    return summary


def _list_account_assignments(self: SSOAdminResponse) -> str:
    key = (
        _required(self, "InstanceArn"),
        _required(self, "AccountId"),
        _required(self, "PermissionSetArn"),
    )
    found = _index(self.ssoadmin_backend).get(key, [])
    summaries = [
        {
            "AccountId": a.target_id,
            "PermissionSetArn": a.permission_set_arn,
            "PrincipalType": a.principal_type,
            "PrincipalId": a.principal_id,
        }
        for a in found
    ]
    return _page(self, "AccountAssignments", summaries)


def _list_permission_sets_provisioned_to_account(self: SSOAdminResponse) -> str:
    instance, account = _required(self, "InstanceArn"), _required(self, "AccountId")
    _status(self)
    arns = list(provisioned(self.ssoadmin_backend).get((instance, account), {}))
    return _page(self, "PermissionSets", arns)


def _list_accounts_for_provisioned_permission_set(self: SSOAdminResponse) -> str:
    instance, ps_arn = _required(self, "InstanceArn"), _required(self, "PermissionSetArn")
    _status(self)
    self.ssoadmin_backend._find_permission_set(instance, ps_arn)  # ResourceNotFound if none
    accounts = [
        account
        for (where, account), arns in provisioned(self.ssoadmin_backend).items()
        if where == instance and ps_arn in arns
    ]
    return _page(self, "AccountIds", accounts)


def provision(self: SSOAdminResponse) -> None:
    """What ProvisionPermissionSet adds: the account it names (ALL_PROVISIONED_ACCOUNTS
    re-provisions where the set already is, adding nowhere)."""
    if (self._get_param("TargetType") or "AWS_ACCOUNT") != "AWS_ACCOUNT":
        return
    instance, ps_arn = self._get_param("InstanceArn"), self._get_param("PermissionSetArn")
    account = _required(self, "TargetId")
    provisioned(self.ssoadmin_backend).setdefault((instance, account), {})[ps_arn] = None


def _boundaries(backend: SSOAdminBackend) -> dict[str, dict[str, Any]]:
    """Permission set ARN → its permissions boundary (moto 5.2 keeps none)."""
    found: dict[str, dict[str, Any]] = backend.__dict__.setdefault("_jit_boundaries", {})
    return found


def _put_permissions_boundary_to_permission_set(self: SSOAdminResponse) -> str:
    instance, ps_arn = _required(self, "InstanceArn"), _required(self, "PermissionSetArn")
    self.ssoadmin_backend._find_permission_set(instance, ps_arn)  # ResourceNotFound if none
    boundary = self._get_param("PermissionsBoundary")
    kinds = ("ManagedPolicyArn", "CustomerManagedPolicyReference")
    if not isinstance(boundary, dict) or sum(k in boundary for k in kinds) != 1:
        raise ValidationException(
            "PermissionsBoundary must have exactly one of ManagedPolicyArn and "
            "CustomerManagedPolicyReference"
        )
    _boundaries(self.ssoadmin_backend)[ps_arn] = boundary
    return "{}"


def _get_permissions_boundary_for_permission_set(self: SSOAdminResponse) -> str:
    """As AWS answers: the boundary, or ResourceNotFoundException when the set has none."""
    instance, ps_arn = _required(self, "InstanceArn"), _required(self, "PermissionSetArn")
    self.ssoadmin_backend._find_permission_set(instance, ps_arn)
    boundary = _boundaries(self.ssoadmin_backend).get(ps_arn)
    if boundary is None:
        raise ResourceNotFoundException("Could not find PermissionsBoundary for PermissionSet")
    return json.dumps({"PermissionsBoundary": boundary})


def _required(self: SSOAdminResponse, name: str) -> str:
    value = self._get_param(name)
    if not isinstance(value, str) or not value:
        raise ValidationException(f"1 validation error detected: '{name}' must not be null")
    return value


def _status(self: SSOAdminResponse) -> None:
    """Every set this fake provisions is at its latest version, so the filter
    LATEST_PERMISSION_SET_NOT_PROVISIONED would answer nothing: refuse it rather than
    pretend."""
    status = self._get_param("ProvisioningStatus")
    if status not in (None, "LATEST_PERMISSION_SET_PROVISIONED"):
        raise ValidationException(f"the fake does not model ProvisioningStatus {status}")


def _page(self: SSOAdminResponse, key: str, items: Sequence[Any]) -> str:
    size = self._get_param("MaxResults") or PAGE
    token = self._get_param("NextToken")
    if not isinstance(size, int) or not 1 <= size <= PAGE:
        raise ValidationException(f"MaxResults must be between 1 and {PAGE}")
    start = 0
    if token:
        if not str(token).isdigit() or int(token) > len(items):
            raise ValidationException("Invalid NextToken")
        start = int(token)
    end = start + size
    answer: dict[str, Any] = {key: list(items[start:end])}
    if end < len(items):
        answer["NextToken"] = str(end)
    return json.dumps(answer)


def install() -> None:
    """Patch moto's backend and responses (idempotent: the same functions each time)."""
    backend: dict[str, Callable[..., Any]] = {
        "create_account_assignment": _create_account_assignment,
        "delete_account_assignment": _delete_account_assignment,
    }
    responses: dict[str, Callable[..., Any]] = {
        "list_account_assignments": _list_account_assignments,
        "list_permission_sets_provisioned_to_account": (
            _list_permission_sets_provisioned_to_account
        ),
        "list_accounts_for_provisioned_permission_set": (
            _list_accounts_for_provisioned_permission_set
        ),
        "put_permissions_boundary_to_permission_set": (_put_permissions_boundary_to_permission_set),
        "get_permissions_boundary_for_permission_set": (
            _get_permissions_boundary_for_permission_set
        ),
    }
    for name, function in backend.items():
        setattr(SSOAdminBackend, name, function)
    for name, function in responses.items():
        setattr(SSOAdminResponse, name, function)
