"""``jit-bot import aws`` at scale (issue 18 point 7): the generated estate has the issue's
shape, the reader asks only for the (account, permission set) pairs AWS has provisioned,
and the mining core reproduces a generated estate at the (capability, account) grain.
The full figures are bench/import_scale.py's."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable

from bot.importer.aws.capabilities import capabilities
from bot.importer.aws.reading import read_estate
from bot.importer.mining import Mining, mine
from providers.aws import AwsClients
from providers.aws.calls import RETRY, AwsCalls
from tests.fakes.aws import REGION, MotoAws
from tests.fakes.aws_scale import FULL, Shape, as_estate, generate, seed_scale

SMALL = Shape(permission_sets=40, accounts=8, people=150, groups=12, assignments=1_200)


def test_the_full_estate_has_the_shape_of_the_issue_and_is_the_same_every_time() -> None:
    estate = generate(FULL)

    assert (len(estate.sets), len(estate.accounts), len(estate.people)) == (500, 60, 3_000)
    assert (len(estate.groups), len(estate.grants), len(set(estate.grants))) == (
        150,
        40_000,
        40_000,
    )
    kinds = Counter(g.principal_type for g in estate.grants)
    assert kinds["GROUP"] > 2 * kinds["USER"] > 0
    assigned = {g.permission_set for g in estate.grants}
    assert estate.dead and not set(estate.dead) & assigned
    names = [s.name for s in estate.sets]
    assert sum(n.startswith("ProdReadOnly-{account:") for n in names) == 18  # one per prod account
    assert Counter(a.ou for a in estate.accounts) == {
        "Prod": 18,
        "Dev": 18,
        "Staging": 12,
        "Sandbox": 12,
    }
    assert generate(FULL) == estate


def test_the_reader_lists_assignments_only_where_a_set_is_provisioned(moto: MotoAws) -> None:
    seeded = seed_scale(moto, generate(SMALL))
    calls: list[str] = []
    clients = AwsClients(
        moto.session(),
        region=REGION,
        endpoint_url=moto.endpoint,
        on_call=lambda _, operation: calls.append(operation),
    )

    estate = read_estate(clients, AwsCalls(RETRY, sleep=lambda _: None))

    grants = seeded.estate.grants
    pairs = {(g.permission_set, g.account) for g in grants}
    assert (
        calls.count("ListAccountAssignments") == len(pairs) < len(seeded.estate.sets) * 8
    )  # not every pair
    assert calls.count("ListPermissionSetsProvisionedToAccount") == len(estate.accounts) == 9
    names = {arn: ps.name for arn, ps in estate.permission_sets.items()}
    ids = {v: k for k, v in seeded.estate.ids.items()}
    read = {(names[a.permission_set_arn], ids[a.account_id]) for a in estate.assignments}
    assert len(estate.assignments) == len(grants) and read == pairs


def test_a_set_provisioned_without_assignments_is_listed_and_reads_as_none(
    moto: MotoAws,
) -> None:
    seeded = seed_scale(moto, generate(SMALL))
    sso = moto.client("sso-admin")
    lonely = sso.create_permission_set(Name="lonely", InstanceArn=seeded.instance_arn)
    arn = lonely["PermissionSet"]["PermissionSetArn"]
    account = seeded.estate.ids[seeded.estate.accounts[0].name]
    sso.provision_permission_set(
        InstanceArn=seeded.instance_arn,
        PermissionSetArn=arn,
        TargetType="AWS_ACCOUNT",
        TargetId=account,
    )

    listed = sso.list_permission_sets_provisioned_to_account(
        InstanceArn=seeded.instance_arn, AccountId=account
    )
    where = sso.list_accounts_for_provisioned_permission_set(
        InstanceArn=seeded.instance_arn, PermissionSetArn=arn
    )
    clients = AwsClients(moto.session(), region=REGION, endpoint_url=moto.endpoint)
    estate = read_estate(clients, AwsCalls(RETRY, sleep=lambda _: None))

    assert arn in listed["PermissionSets"] and where["AccountIds"] == [account]
    assert arn in estate.permission_sets
    assert not [a for a in estate.assignments if a.permission_set_arn == arn]
    assert len(estate.assignments) == len(seeded.estate.grants)


def test_the_core_reproduces_a_generated_estate_by_account_at_its_minimum() -> None:
    estate = as_estate(generate(SMALL))
    caps = capabilities(estate.permission_sets.values())
    pairs = {
        (person, (caps[a.permission_set_arn], a.account_id))
        for a in estate.assignments
        for person in estate.holders(a)
    }

    result = mine(pairs, time_limit=30)

    assert _reproduces(result, pairs)
    assert result.figures.roles == result.figures.lower_bound
    assert result.figures.distinct_permissions < result.figures.permissions  # copies merged


def _reproduces(result: Mining[Hashable, Hashable], pairs: set[tuple[str, Hashable]]) -> bool:
    held: dict[Hashable, set[Hashable]] = defaultdict(set)
    for user, permission in pairs:
        held[user].add(permission)
    granted = {role.name: set(role.permissions) for role in result.roles}
    return set(result.assignments) == set(held) and all(
        set().union(*(granted[n] for n in names)) == held[user]
        for user, names in result.assignments.items()
    )
