"""What an ``aws`` entry of roles.yaml may say: the target model and its validators."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from providers.base import TargetSpec

_ACCOUNT = re.compile(r"^\d{12}$")
_OU = re.compile(r"^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$")
# AWS writes permissionSet/…; some emulators write instance/…, so the kind is not checked.
_PS_ARN = re.compile(
    r"^arn:aws[a-z-]*:sso:::[A-Za-z]+/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}$"
)
_PS_NAME = re.compile(r"^[\w+=,.@-]{1,32}$")
_INSTANCE_ARN = re.compile(r"^arn:aws[a-z-]*:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def _account(value: str) -> str:
    if not _ACCOUNT.match(value):
        raise ValueError(f"'{value}' is not an AWS account id; expected 12 digits in quotes")
    return value


def _ou(value: str) -> str:
    if not _OU.match(value):
        raise ValueError(
            f"'{value}' is not an organizational unit id; expected ou-xxxx-xxxxxxxx or r-xxxx"
        )
    return value


def _permission_set(value: str) -> str:
    if value.startswith("arn:"):
        if not _PS_ARN.match(value):
            raise ValueError(
                f"'{value}' is not a permission set ARN; expected "
                "arn:aws:sso:::permissionSet/ssoins-…/ps-…"
            )
    elif not _PS_NAME.match(value):
        raise ValueError(f"'{value}' is not a permission set name or ARN")
    return value


def _match(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"'{value}' is not {what}")
        return value

    return check


AccountId = Annotated[str, AfterValidator(_account)]
OuId = Annotated[str, AfterValidator(_ou)]


class AwsTarget(TargetSpec):
    provider: Literal["aws"] = "aws"
    permission_set: Annotated[str, AfterValidator(_permission_set)]
    accounts: list[AccountId] = Field(default_factory=list)
    organizational_units: list[OuId] = Field(default_factory=list)
    instance_arn: (
        Annotated[str, AfterValidator(_match(_INSTANCE_ARN, "an Identity Center instance ARN"))]
        | None
    ) = None
    assume_role_arn: Annotated[str, AfterValidator(_match(_ROLE_ARN, "an IAM role ARN"))] | None = (
        None
    )
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    #: At revocation, also end the role sessions taken during the grant (a Deny in the
    #: permission set's inline policy until they have run out); see providers/aws_sessions.py.
    end_sessions: bool = True

    def key(self) -> str:
        # Whether sessions end is how access is taken away, not which access is held: two
        # grants that differ only in it give the same assignment.
        dump = self.model_dump(mode="json", exclude={"end_sessions"})
        return json.dumps(dump, sort_keys=True, separators=(",", ":"))

    @model_validator(mode="after")
    def _somewhere(self) -> AwsTarget:
        if not self.accounts and not self.organizational_units:
            raise ValueError("expected 'accounts' and/or 'organizational_units' to grant on")
        if self.external_id and not self.assume_role_arn:
            raise ValueError("external_id only makes sense with assume_role_arn")
        return self
