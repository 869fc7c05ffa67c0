"""An IAM Identity Center estate at the scale of issue 18 point 7, generated from a seed.

The shape of a real estate that grew without a plan, built from team structure so that
there are functional roles to be found:

- accounts: business units, each with accounts in the Prod, Staging and Dev OUs (under
  Workloads) and in Sandbox;
- permission sets: AWS-managed job sets (ReadOnly, PowerUser, Admin …), duplicates of
  them under other names, per-account copies (``ProdReadOnly-<account id>``,
  ``Deploy-<account id>``), action-level inline sets per business unit
  (``payments-s3-read-logs``) and dead sets assigned to nobody;
- groups: product teams of a business unit (developers, on-call, data, QA, leads) and
  platform teams across every account (SRE, security, FinOps …), each holding a bundle of
  sets per environment on its accounts;
- users: each in one team, some in a second; user assignments on top: legacy copies of
  what their team holds, a former team's bundle kept after a move, popular extras.

:func:`generate` is pure (the same shape and seed give the same estate); account ids in
set names and policies are written ``{account:NAME}`` until :meth:`ScaleEstate.with_ids`
fills them in. :func:`seed_scale` puts an estate into moto: the organization over HTTP,
the bulk (users, groups, permission sets, assignments) straight into moto's backends,
which works when the moto server runs in this process (``MotoAws`` does).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from bot.importer.aws.estate import Account, Assignment, Estate, PermissionSet
from tests.fakes.aws import REGION, MotoAws

DOMAIN = "example.com"
ENVIRONMENTS = (("Prod", 0.3), ("Staging", 0.2), ("Dev", 0.3), ("Sandbox", 0.2))
WORKLOADS = ("Prod", "Staging", "Dev")  # under the Workloads OU; Sandbox under the root
_POLICY = "arn:aws:iam::aws:policy/"
MANAGED = {
    "ReadOnly": _POLICY + "ReadOnlyAccess",
    "ViewOnly": _POLICY + "job-function/ViewOnlyAccess",
    "PowerUser": _POLICY + "PowerUserAccess",
    "Admin": _POLICY + "AdministratorAccess",
    "Billing": _POLICY + "job-function/Billing",
    "SecurityAudit": _POLICY + "SecurityAudit",
    "DatabaseAdmin": _POLICY + "job-function/DatabaseAdministrator",
    "NetworkAdmin": _POLICY + "job-function/NetworkAdministrator",
    "DataScientist": _POLICY + "job-function/DataScientist",
    "SupportUser": _POLICY + "job-function/SupportUser",
    "SystemAdmin": _POLICY + "job-function/SystemAdministrator",
}
UNITS = (
    "payments",
    "checkout",
    "search",
    "identity",
    "catalog",
    "shipping",
    "ads",
    "media",
    "billing",
    "analytics",
    "mobile",
    "messaging",
    "pricing",
    "inventory",
    "reviews",
    "loyalty",
)
# Action-level templates: name, actions, resource pattern ({unit} is the business unit).
ACTIONS = tuple(
    (name, tuple(actions.split()), resource)
    for name, actions, resource in (
        ("s3-read-logs", "s3:GetObject s3:ListBucket", "arn:aws:s3:::{unit}-logs/*"),
        ("s3-write-uploads", "s3:PutObject", "arn:aws:s3:::{unit}-uploads/*"),
        ("ec2-stop", "ec2:StopInstances", "*"),
        ("ec2-start", "ec2:StartInstances", "*"),
        ("ec2-reboot", "ec2:RebootInstances", "*"),
        ("logs-tail", "logs:FilterLogEvents logs:GetLogEvents", "arn:aws:logs:*:*:{unit}-*"),
        ("ssm-session", "ssm:StartSession", "*"),
        ("rds-connect", "rds-db:connect", "arn:aws:rds-db:*:*:dbuser:*/{unit}"),
        ("dynamodb-query", "dynamodb:Query dynamodb:GetItem", "arn:aws:dynamodb:*:*:{unit}-*"),
        ("dynamodb-write", "dynamodb:PutItem dynamodb:UpdateItem", "arn:aws:dynamodb:*:*:{unit}"),
        ("sqs-send", "sqs:SendMessage", "arn:aws:sqs:*:*:{unit}-*"),
        ("sqs-purge", "sqs:PurgeQueue", "arn:aws:sqs:*:*:{unit}-*"),
        ("sns-publish", "sns:Publish", "arn:aws:sns:*:*:{unit}-*"),
        ("lambda-invoke", "lambda:InvokeFunction", "arn:aws:lambda:*:*:function:{unit}-*"),
        ("lambda-update", "lambda:UpdateFunctionCode", "arn:aws:lambda:*:*:function:{unit}-*"),
        ("ecs-exec", "ecs:ExecuteCommand", "*"),
        ("ecs-deploy", "ecs:UpdateService ecs:RegisterTaskDefinition", "*"),
        ("ecr-push", "ecr:PutImage ecr:InitiateLayerUpload", "arn:aws:ecr:*:*:repository/{unit}"),
        ("kms-decrypt", "kms:Decrypt", "*"),
        ("secrets-read", "secretsmanager:GetSecretValue", "arn:aws:secretsmanager:*:*:{unit}/*"),
        ("cw-read", "cloudwatch:GetMetricData cloudwatch:ListMetrics", "*"),
        ("xray-read", "xray:GetTraceSummaries", "*"),
        ("athena-query", "athena:StartQueryExecution athena:GetQueryResults", "*"),
        ("glue-run", "glue:StartJobRun", "arn:aws:glue:*:*:job/{unit}-*"),
        ("kinesis-read", "kinesis:GetRecords kinesis:GetShardIterator", "*"),
        ("states-start", "states:StartExecution", "arn:aws:states:*:*:{unit}-*"),
        ("apigw-read", "apigateway:GET", "*"),
        ("route53-read", "route53:ListResourceRecordSets", "*"),
        ("elb-read", "elasticloadbalancing:Describe*", "*"),
        ("asg-set", "autoscaling:SetDesiredCapacity", "*"),
    )
)
PRODUCT_KINDS = ("developers", "developers", "developers", "oncall", "data", "qa", "leads")
PLATFORM_KINDS = ("sre", "security", "finops", "network", "dba", "support", "incident")
_TOKEN = re.compile(r"\{account:([^}]+)\}")


@dataclass(frozen=True)
class Shape:
    permission_sets: int
    accounts: int
    people: int
    groups: int
    assignments: int


FULL = Shape(permission_sets=500, accounts=60, people=3_000, groups=150, assignments=40_000)


@dataclass(frozen=True)
class SetSpec:
    name: str
    managed: tuple[str, ...] = ()
    inline: str | None = None
    customer: tuple[str, ...] = ()
    session: str = "PT1H"


@dataclass(frozen=True)
class AccountSpec:
    name: str
    ou: str  # Prod, Staging, Dev or Sandbox: the environment, by OU
    unit: str


@dataclass(frozen=True)
class Grant:
    """One account assignment: a set on an account to a group or a user, by name."""

    permission_set: str
    account: str
    principal_type: str  # GROUP or USER
    principal: str


@dataclass(frozen=True)
class ScaleEstate:
    shape: Shape
    accounts: tuple[AccountSpec, ...]
    sets: tuple[SetSpec, ...]
    people: tuple[str, ...]  # user names; emails are NAME@example.com
    groups: Mapping[str, tuple[str, ...]]  # group → its members' user names
    grants: tuple[Grant, ...]
    dead: tuple[str, ...]  # permission sets assigned to nobody
    ids: Mapping[str, str] = field(default_factory=dict)  # account name → id, once known

    def with_ids(self, ids: Mapping[str, str]) -> ScaleEstate:
        """The estate with ``{account:NAME}`` in set names and policies replaced."""

        def fill(text: str) -> str:
            return _TOKEN.sub(lambda m: ids[m.group(1)], text)

        sets = tuple(
            replace(s, name=fill(s.name), inline=fill(s.inline) if s.inline else None)
            for s in self.sets
        )
        grants = tuple(replace(g, permission_set=fill(g.permission_set)) for g in self.grants)
        dead = tuple(fill(d) for d in self.dead)
        return replace(self, sets=sets, grants=grants, dead=dead, ids=dict(ids))


def generate(shape: Shape, seed: int = 18) -> ScaleEstate:
    """The estate of ``shape``: the same for the same shape and seed."""
    rng = random.Random(seed)
    units = UNITS[: max(1, min(len(UNITS), shape.accounts // 10))]
    accounts = _accounts(shape.accounts, units)
    sets, action_sets, dead = _sets(shape.permission_sets, accounts, units)
    teams = _teams(shape.groups, units)
    people = tuple(f"person{n:04d}" for n in range(shape.people))
    members, primary = _members(rng, people, teams)
    plan = _Plan(rng, accounts, action_sets, {s.name for s in sets})
    grants: dict[Grant, None] = {}
    bundles = {team: plan.bundle(team) for team in teams}
    for team, bundle in bundles.items():
        grants.update((Grant(ps, account, "GROUP", team), None) for ps, account in bundle)
    _user_grants(rng, shape.assignments, grants, bundles, primary, plan)
    return ScaleEstate(
        shape, accounts, sets, people, members, tuple(grants)[: shape.assignments], dead
    )


def fake_ids(estate: ScaleEstate) -> dict[str, str]:
    """Account name → a 12-digit id, for an estate used without moto."""
    return {a.name: f"{100_000_000_000 + 7_919 * n:012d}" for n, a in enumerate(estate.accounts)}


def _accounts(count: int, units: tuple[str, ...]) -> tuple[AccountSpec, ...]:
    sizes = [max(1, round(count * weight)) for _, weight in ENVIRONMENTS[:-1]]
    sizes.append(max(1, count - sum(sizes)))
    found = []
    for (ou, _), size in zip(ENVIRONMENTS, sizes, strict=True):
        for n in range(size):
            unit = units[n % len(units)]
            found.append(AccountSpec(f"{unit}-{ou.lower()}-{n // len(units) + 1}", ou, unit))
    return tuple(found)


def _inline(actions: tuple[str, ...], resource: str) -> str:
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _sets(
    count: int, accounts: tuple[AccountSpec, ...], units: tuple[str, ...]
) -> tuple[tuple[SetSpec, ...], dict[str, list[str]], tuple[str, ...]]:
    """The permission sets, the action-level ones of each unit, and the dead ones."""
    sets = [SetSpec(name, managed=(arn,)) for name, arn in MANAGED.items()]
    for n in range(max(1, count * 3 // 100)):  # the same managed policy, another name
        name = list(MANAGED)[n % len(MANAGED)]
        sets.append(SetSpec(f"{name}Access-{n // len(MANAGED) + 1}", managed=(MANAGED[name],)))
    for account in accounts:
        token = f"{{account:{account.name}}}"
        if account.ou == "Prod":
            audit = _inline(("s3:GetObject",), f"arn:aws:s3:::audit-{token}/*")
            sets.append(SetSpec(f"ProdReadOnly-{token}", (MANAGED["ReadOnly"],), audit))
        if account.ou in ("Prod", "Staging"):
            stacks = f"arn:aws:cloudformation:*:{token}:stack/*"
            deploy = _inline(("cloudformation:CreateChangeSet", "cloudformation:Execute*"), stacks)
            sets.append(SetSpec(f"Deploy-{token}", inline=deploy, session="PT4H"))
    dead = []
    for n in range(max(1, count * 5 // 100)):
        name, actions, resource = ACTIONS[n % len(ACTIONS)]
        dead.append(f"legacy-{name}-{n}")
        legacy = _inline(actions, resource.format(unit="legacy"))
        sets.append(SetSpec(dead[-1], inline=legacy, customer=(f"/legacy/{name}",)))
    left = max(3 * len(units), count - len(sets))
    action_sets: dict[str, list[str]] = {}
    for u, unit in enumerate(units):
        for n in range(left // len(units) + (u < left % len(units))):
            name, actions, resource = ACTIONS[n % len(ACTIONS)]
            suffix = f"-{n // len(ACTIONS) + 1}" if n >= len(ACTIONS) else ""
            spec = SetSpec(
                f"{unit}-{name}{suffix}", inline=_inline(actions, resource.format(unit=unit))
            )
            sets.append(spec)
            action_sets.setdefault(unit, []).append(spec.name)
    return tuple(sets), action_sets, tuple(dead)


def _teams(count: int, units: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Group name → (unit or "*" for platform teams, kind)."""
    teams: dict[str, tuple[str, str]] = {}
    platform = max(2, count // 12)
    for n in range(platform):
        kind = PLATFORM_KINDS[n % len(PLATFORM_KINDS)]
        teams[f"platform-{kind}-{n // len(PLATFORM_KINDS) + 1}"] = ("*", kind)
    for n in range(count - platform):
        unit = units[n % len(units)]
        k = n // len(units)
        kind = PRODUCT_KINDS[k % len(PRODUCT_KINDS)]
        teams[f"{unit}-{kind}-{k + 1}"] = (unit, kind)
    return teams


def _members(
    rng: random.Random, people: tuple[str, ...], teams: Mapping[str, tuple[str, str]]
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Each person in one team (teams of uneven size), some also in a second."""
    names = list(teams)
    weights = [rng.lognormvariate(0, 0.6) for _ in names]
    primary = {person: names[n] for n, person in enumerate(people[: len(names)])}
    for person in people[len(names) :]:
        primary[person] = rng.choices(names, weights)[0]
    members: dict[str, list[str]] = {name: [] for name in names}
    for person, team in primary.items():
        members[team].append(person)
        if rng.random() < 0.15:
            second = rng.choice(names)
            if second != team:
                members[second].append(person)
    return {team: tuple(people) for team, people in members.items()}, primary


class _Plan:
    """What each team holds: a bundle of sets per environment on the accounts in its
    reach (its unit's, or every unit's for a platform team)."""

    def __init__(
        self,
        rng: random.Random,
        accounts: tuple[AccountSpec, ...],
        action_sets: Mapping[str, list[str]],
        names: set[str],
    ) -> None:
        self.accounts = accounts
        self.actions = action_sets
        self.names = names
        self.extras = {
            unit: [(rng.choice(sets), rng.choice(WORKLOADS)) for _ in range(6)]
            for unit, sets in action_sets.items()
        }

    def bundle(self, team: str) -> list[tuple[str, str]]:
        """(set, account) pairs the team's group is assigned."""
        rng = random.Random(team)
        unit, kind = team.rsplit("-", 2)[0], team.rsplit("-", 2)[1]
        pairs = []
        for account in self.accounts:
            if unit not in ("platform", account.unit):
                continue
            items = self._items(kind, team, account)
            for item in items:
                pairs.append((self._name(item, account, rng), account.name))
        return pairs

    def _items(self, kind: str, team: str, account: AccountSpec) -> list[str]:
        ou, actions = account.ou, self.actions[account.unit]
        half = len(actions) // 2
        # Squads of one kind in a unit mostly hold the same bundle; every third one
        # also holds a set of its own.
        index = int(team.rsplit("-", 1)[1]) - 1
        window = actions[: len(actions) * 3 // 4]
        if index % 3 == 2:
            window = [*window, actions[-1 - index % (len(actions) // 4 or 1)]]
        bundles: dict[str, dict[str, list[str]]] = {
            "developers": {
                "Dev": ["PowerUser", *window],
                "Sandbox": ["Admin"],
                "Staging": ["ReadOnly", "copy:Deploy", *window],
                "Prod": ["copy:ProdReadOnly", "copy:Deploy", *window[:5]],
            },
            "oncall": {
                "Prod": ["copy:ProdReadOnly", "SupportUser", *actions[:half]],
                "Staging": ["ReadOnly", *actions[:half]],
            },
            "data": {env: ["DataScientist", *actions[half:]] for env in WORKLOADS},
            "qa": {"Staging": ["ReadOnly", "copy:Deploy", *window[:5]], "Dev": ["ReadOnly"]},
            "leads": {
                "Prod": ["ViewOnly", "Billing"],
                "Staging": ["ViewOnly"],
                "Dev": ["ViewOnly"],
            },
            "sre": {
                "Prod": ["SystemAdmin", "copy:ProdReadOnly", *actions[:5]],
                "Staging": ["Admin"],
                "Dev": ["Admin"],
                "Sandbox": ["Admin"],
            },
            "security": {env: ["SecurityAudit", "ViewOnly"] for env, _ in ENVIRONMENTS},
            "finops": {"Prod": ["Billing", "ViewOnly"], "Staging": ["ViewOnly"]},
            "network": {env: ["NetworkAdmin"] for env, _ in ENVIRONMENTS},
            "dba": {env: ["DatabaseAdmin", actions[7 % len(actions)]] for env in WORKLOADS[:2]},
            "support": {"Prod": ["SupportUser", actions[5 % len(actions)]]},
            "incident": {"Prod": ["copy:ProdReadOnly", "SystemAdmin"]},
        }
        return bundles[kind].get(ou, [])

    def _name(self, item: str, account: AccountSpec, rng: random.Random) -> str:
        if item.startswith("copy:"):
            return f"{item[5:]}-{{account:{account.name}}}"
        duplicate = f"{item}Access-1"
        if item in MANAGED and duplicate in self.names and rng.random() < 0.2:
            return duplicate  # a team that grew up with the copy
        return item

    def where(self, unit: str, ou: str) -> list[str]:
        return [a.name for a in self.accounts if a.unit == unit and a.ou == ou]


def _user_grants(
    rng: random.Random,
    target: int,
    grants: dict[Grant, None],
    bundles: Mapping[str, list[tuple[str, str]]],
    primary: Mapping[str, str],
    plan: _Plan,
) -> None:
    """User assignments until there are ``target`` assignments in all: a copy of one of
    the team's (half), a former team's bundle on one account (a fifth), a popular extra
    of the unit on all its accounts of an environment (the rest)."""
    people = list(primary)
    teams = list(bundles)
    for _ in range(target * 20):
        if len(grants) >= target:
            return
        person = rng.choice(people)
        team = primary[person]
        draw = rng.random()
        if draw < 0.5 and bundles[team]:
            found = [rng.choice(bundles[team])]
        elif draw < 0.7:
            former = bundles[rng.choice(teams)]
            account = rng.choice(former)[1] if former else ""
            found = [pair for pair in former if pair[1] == account]
        else:
            unit = team.rsplit("-", 2)[0]
            unit = unit if unit in plan.extras else rng.choice(sorted(plan.extras))
            ps, ou = rng.choice(plan.extras[unit])
            found = [(ps, account) for account in plan.where(unit, ou)]
        grants.update((Grant(ps, account, "USER", person), None) for ps, account in found)


def as_estate(estate: ScaleEstate) -> Estate:
    """The estate as the reader would return it (ids made up from names), for mining it
    without AWS."""
    ids = estate.ids or fake_ids(estate)
    filled = estate if estate.ids else estate.with_ids(ids)
    arn = {
        s.name: f"arn:aws:sso:::permissionSet/ssoins-scale/ps-{n:04d}"
        for n, s in enumerate(filled.sets)
    }
    sets = {
        arn[s.name]: PermissionSet(arn[s.name], s.name, s.session, s.managed, s.customer, s.inline)
        for s in filled.sets
    }
    accounts = {
        ids[a.name]: Account(ids[a.name], a.name, a.ou, {"unit": a.unit}) for a in filled.accounts
    }
    assignments = tuple(
        Assignment(ids[g.account], arn[g.permission_set], g.principal_type, g.principal)
        for g in filled.grants
    )
    people = {name: f"{name}@{DOMAIN}" for name in filled.people}
    groups = {name: name for name in filled.groups}
    return Estate(sets, accounts, assignments, people, groups, dict(filled.groups))


@dataclass
class SeededScale:
    """What :func:`seed_scale` made: the estate with its account ids, and moto's ids."""

    estate: ScaleEstate
    instance_arn: str
    store_id: str
    users: dict[str, str] = field(default_factory=dict)  # user name → user id
    groups: dict[str, str] = field(default_factory=dict)  # group → group id


def seed_scale(moto: MotoAws, shape: ScaleEstate) -> SeededScale:
    """Reset moto and put the estate in: the organization (a few hundred calls) over
    HTTP, everything else straight into the backends of this process's moto."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.identitystore.models import identitystore_backends
    from moto.ssoadmin.models import ManagedPolicy, ssoadmin_backends

    moto.reset()
    instance = moto.client("sso-admin").list_instances()["Instances"][0]
    sso = ssoadmin_backends[DEFAULT_ACCOUNT_ID][REGION]
    if not any(i.instance_arn == instance["InstanceArn"] for i in sso.instances):
        raise RuntimeError("seed_scale needs the moto server to run in this process")
    estate = shape.with_ids(_organization(moto, shape))
    seeded = SeededScale(estate, instance["InstanceArn"], instance["IdentityStoreId"])
    store = identitystore_backends[DEFAULT_ACCOUNT_ID][REGION]
    for person in estate.people:
        email = f"{person}@{DOMAIN}"
        seeded.users[person], _ = store.create_user(
            identity_store_id=seeded.store_id,
            user_name=person,
            name={"GivenName": person, "FamilyName": "Scale"},
            display_name=person,
            nick_name=None,
            profile_url=None,
            emails=[{"Value": email, "Type": "work", "Primary": True}],
            addresses=[],
            phone_numbers=[],
            user_type=None,
            title=None,
            preferred_language=None,
            locale=None,
            timezone=None,
        )
    for group, people in estate.groups.items():
        seeded.groups[group], _ = store.create_group(seeded.store_id, group, "")
        for person in people:
            store.create_group_membership(
                seeded.store_id, seeded.groups[group], {"UserId": seeded.users[person]}
            )
    arns = {}
    for spec in estate.sets:
        created = sso.create_permission_set(
            spec.name, "", seeded.instance_arn, spec.session, "", []
        )
        arn = arns[spec.name] = created["PermissionSetArn"]
        permission_set = sso._find_permission_set(seeded.instance_arn, arn)
        for policy in spec.managed:  # AWS's ARNs, some missing from moto's list of them
            permission_set.managed_policies.append(ManagedPolicy(policy, policy.rsplit("/")[-1]))
            permission_set.total_managed_policies_attached += 1
        for path_name in spec.customer:
            path, name = path_name.rsplit("/", 1)
            sso.attach_customer_managed_policy_reference_to_permission_set(
                seeded.instance_arn, arn, {"Name": name, "Path": f"{path}/"}
            )
        if spec.inline:
            sso.put_inline_policy_to_permission_set(seeded.instance_arn, arn, spec.inline)
    principals = {"GROUP": seeded.groups, "USER": seeded.users}
    for g in estate.grants:
        sso.create_account_assignment(
            seeded.instance_arn,
            estate.ids[g.account],
            "AWS_ACCOUNT",
            arns[g.permission_set],
            g.principal_type,
            principals[g.principal_type][g.principal],
        )
    return seeded


def _organization(moto: MotoAws, estate: ScaleEstate) -> dict[str, str]:
    """The OUs and accounts, tagged with their unit; account name → id."""
    org = moto.client("organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]

    def ou(parent: str, name: str) -> str:
        created = org.create_organizational_unit(ParentId=parent, Name=name)
        return str(created["OrganizationalUnit"]["Id"])

    workloads = ou(root, "Workloads")
    ous = {name: ou(workloads if name in WORKLOADS else root, name) for name, _ in ENVIRONMENTS}
    ids = {}
    for account in estate.accounts:
        created = org.create_account(Email=f"{account.name}@aws.{DOMAIN}", AccountName=account.name)
        ids[account.name] = account_id = created["CreateAccountStatus"]["AccountId"]
        org.move_account(
            AccountId=account_id, SourceParentId=root, DestinationParentId=ous[account.ou]
        )
        org.tag_resource(ResourceId=account_id, Tags=[{"Key": "unit", "Value": account.unit}])
    return ids
