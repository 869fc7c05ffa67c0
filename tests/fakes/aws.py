"""AWS for tests: moto in server mode, reached over HTTP through an endpoint URL exactly as
the bot reaches AWS, seeded with an organization, Identity Center users and permission
sets."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from moto.ssoadmin.exceptions import ResourceNotFoundException
from moto.ssoadmin.responses import SSOAdminResponse

from tests.fakes import aws_ssoadmin

REGION = "us-east-1"

# moto (5.2) provisions a permission set at once, ignores TargetType and has no
# DescribePermissionSetProvisioningStatus. The fake records every provisioning request (what
# the tests assert on) and answers for its status the way AWS does; ``fail_provisionings``
# makes the next ones end FAILED, as AWS reports a provisioning it could not finish.
_provisionings: list[dict[str, str]] = []
_provisionings_lock = threading.Lock()
_failing = [0]
_moto_provision = SSOAdminResponse.provision_permission_set


def _provision_permission_set(self: SSOAdminResponse) -> str:
    answer: str = _moto_provision(self)
    aws_ssoadmin.provision(self)
    status = json.loads(answer)["PermissionSetProvisioningStatus"]
    status["RequestId"] = str(uuid.uuid4())
    with _provisionings_lock:
        if _failing[0] > 0:
            _failing[0] -= 1
            status.update(Status="FAILED", FailureReason="Role is being modified")
        _provisionings.append(
            {
                "PermissionSetArn": self._get_param("PermissionSetArn"),
                "TargetType": self._get_param("TargetType") or "AWS_ACCOUNT",
                "RequestId": status["RequestId"],
                "Status": status.get("Status") or "SUCCEEDED",
            }
        )
    return json.dumps({"PermissionSetProvisioningStatus": status})


def _describe_permission_set_provisioning_status(self: SSOAdminResponse) -> str:
    request_id = self._get_param("ProvisionPermissionSetRequestId")
    with _provisionings_lock:
        known = [p for p in _provisionings if p["RequestId"] == request_id]
    if not known:
        raise ResourceNotFoundException(f"no provisioning request {request_id}")
    return json.dumps(
        {
            "PermissionSetProvisioningStatus": {
                "RequestId": request_id,
                "PermissionSetArn": known[0]["PermissionSetArn"],
                "Status": known[0]["Status"],
            }
        }
    )


aws_ssoadmin.install()  # assignments indexed, provisioning per account (see there)
SSOAdminResponse.provision_permission_set = _provision_permission_set  # type: ignore[method-assign]
SSOAdminResponse.describe_permission_set_provisioning_status = (  # type: ignore[attr-defined]
    _describe_permission_set_provisioning_status
)


@dataclass
class Seeded:
    """What ``MotoAws.seed`` created."""

    instance_arn: str
    identity_store_id: str
    accounts: dict[str, str] = field(default_factory=dict)  # name → id
    ous: dict[str, str] = field(default_factory=dict)  # name → id
    permission_sets: dict[str, str] = field(default_factory=dict)  # name → ARN
    users: dict[str, str] = field(default_factory=dict)  # email → user id


class MotoAws:
    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        # The fake's own clients, one per service: making a boto3 client loads its service
        # model (about 0.1 s), and seeding alone asked for five per test.
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    def start(self) -> MotoAws:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def record_requests(self) -> list[tuple[float, float, str]]:
        """From now on, every request the server answers: (time.monotonic() when it
        arrived, when its answer was made, its X-Amz-Target, e.g.
        ``SWBExternalService.ListAccountAssignments``). The list fills as they come."""
        server = self._server._server
        if server is None:
            raise RuntimeError("start the server first")
        app = server.app
        seen: list[tuple[float, float, str]] = []

        def recording(environ: dict[str, Any], start_response: Any) -> Any:
            arrived = time.monotonic()
            answer = app(environ, start_response)
            seen.append((arrived, time.monotonic(), environ.get("HTTP_X_AMZ_TARGET", "")))
            return answer

        server.app = recording
        return seen

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        with _provisionings_lock:
            _provisionings.clear()
            _failing[0] = 0

    def provisionings(self) -> list[tuple[str, str]]:
        """Every ProvisionPermissionSet request received: (permission set ARN, TargetType)."""
        with _provisionings_lock:
            return [(p["PermissionSetArn"], p["TargetType"]) for p in _provisionings]

    def provisioning_statuses(self) -> list[str]:
        """How each ProvisionPermissionSet request ended, in order."""
        with _provisionings_lock:
            return [p["Status"] for p in _provisionings]

    def fail_provisionings(self, times: int) -> None:
        """The next ``times`` ProvisionPermissionSet requests end FAILED."""
        with _provisionings_lock:
            _failing[0] = times

    def inline_policy(self, seeded: Seeded, permission_set: str) -> dict[str, Any] | None:
        """A permission set's inline policy, parsed; None when it has none."""
        document = self.client("sso-admin").get_inline_policy_for_permission_set(
            InstanceArn=seeded.instance_arn, PermissionSetArn=seeded.permission_sets[permission_set]
        )["InlinePolicy"]
        return json.loads(document) if document else None

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )

    def client(self, service: str) -> Any:
        """A client of this server's ``service``, made once (boto3 clients are thread-safe;
        ``session()`` stays fresh for the tests that register events on it)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self.session().client(service, endpoint_url=self.endpoint)
            return self._clients[service]

    def environ(self) -> dict[str, str]:
        """What a bot process needs to reach this AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
        }

    def seed(self) -> Seeded:
        """Reset, then create the test organization. moto keeps its state per Python
        process, shared by every server in it, so seeding always starts from empty."""
        self.reset()
        sso = self.client("sso-admin")
        instance = sso.list_instances()["Instances"][0]
        seeded = Seeded(instance["InstanceArn"], instance["IdentityStoreId"])
        org = self.client("organizations")
        org.create_organization(FeatureSet="ALL")
        root = org.list_roots()["Roots"][0]["Id"]
        prod_ou = org.create_organizational_unit(ParentId=root, Name="prod")
        seeded.ous["prod"] = prod_ou["OrganizationalUnit"]["Id"]
        nested = org.create_organizational_unit(ParentId=seeded.ous["prod"], Name="prod-eu")
        seeded.ous["prod-eu"] = nested["OrganizationalUnit"]["Id"]
        for name, parent in (
            ("shared", None),
            ("prod-a", "prod"),
            ("prod-b", "prod"),
            ("prod-eu-1", "prod-eu"),
        ):
            created = org.create_account(Email=f"{name}@aws.example.com", AccountName=name)
            account_id = created["CreateAccountStatus"]["AccountId"]
            seeded.accounts[name] = account_id
            if parent:
                org.move_account(
                    AccountId=account_id,
                    SourceParentId=root,
                    DestinationParentId=seeded.ous[parent],
                )
        for name, duration in (("ProdSupport", "PT1H"), ("Admin", "PT8H"), ("ReadOnly", "PT1H")):
            created = sso.create_permission_set(
                Name=name, InstanceArn=seeded.instance_arn, SessionDuration=duration
            )
            seeded.permission_sets[name] = created["PermissionSet"]["PermissionSetArn"]
        for email in ("alice@example.com", "bob@example.com", "carol@example.com"):
            seeded.users[email] = self.add_user(seeded, email)
        return seeded

    def add_user(self, seeded: Seeded, email: str, user_name: str | None = None) -> str:
        store = self.client("identitystore")
        created = store.create_user(
            IdentityStoreId=seeded.identity_store_id,
            UserName=user_name or email,
            DisplayName=email,
            Name={"GivenName": email.split("@")[0], "FamilyName": "Test"},
            Emails=[{"Value": email, "Type": "work", "Primary": True}],
        )
        return str(created["UserId"])

    def assignments(self, seeded: Seeded) -> set[tuple[str, str, str]]:
        """Every user assignment: (email, account name, permission set name)."""
        sso = self.client("sso-admin")
        emails = {uid: email for email, uid in seeded.users.items()}
        found = set()
        for account_name, account_id in seeded.accounts.items():
            for ps_name, ps_arn in seeded.permission_sets.items():
                listed = sso.list_account_assignments(
                    InstanceArn=seeded.instance_arn, AccountId=account_id, PermissionSetArn=ps_arn
                )["AccountAssignments"]
                for a in listed:
                    if a["PrincipalType"] == "USER":
                        found.add(
                            (emails.get(a["PrincipalId"], a["PrincipalId"]), account_name, ps_name)
                        )
        return found
