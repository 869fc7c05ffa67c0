"""Normalising permission sets into capabilities and accounts into environments: pure
functions of what was read, tested as tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.importer.access import Capability, Source
from bot.importer.aws.capabilities import capabilities, capability_of
from bot.importer.aws.convert import imported, propose_permission_set
from bot.importer.aws.environments import EnvironmentsError, environments
from bot.importer.aws.estate import Account, Estate, PermissionSet
from bot.importer.similarity import NearDuplicate, capability_labels, near_duplicates

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def _inline(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _set(name: str, *, managed: tuple[str, ...] = (), inline: str | None = None) -> PermissionSet:
    return PermissionSet(f"arn:ps/{name}", name, "PT1H", managed, (), inline)


def _labels(*sets: PermissionSet) -> dict[Capability, tuple[str, ...]]:
    """Each capability → the normalised names of the sets carrying it, shortest first."""
    estate = Estate({ps.arn: ps for ps in sets}, {}, (), {}, {}, {})
    return capability_labels(imported(estate, {}))


def _bucket(account: str) -> str:
    return _inline(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::b-{account}/*"}
    )


def test_per_account_copies_are_one_capability_under_one_name() -> None:
    a = _set("ProdReadOnly-111111111111", managed=(READ_ONLY,), inline=_bucket("111111111111"))
    b = _set("ProdReadOnly-222222222222", managed=(READ_ONLY,), inline=_bucket("222222222222"))

    caps = capabilities([a, b])

    assert caps[a.arn] == caps[b.arn]
    assert _labels(a, b) == {caps[a.arn]: ("ProdReadOnly-{account}",)}


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(
            {"Effect": "Allow", "Action": ["S3:GetObject", "s3:ListBucket"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["s3:listbucket", "s3:getobject"], "Resource": ["*"]},
            True,
            id="action_case_and_order_do_not_matter",
        ),
        pytest.param(
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"},
            False,
            id="other_actions_differ",
        ),
        pytest.param(
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Allow", "NotAction": "s3:GetObject", "Resource": "*"},
            False,
            id="not_action_is_not_action",
        ),
        pytest.param(
            {"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "ec2:StopInstances",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/team": "a"}},
            },
            False,
            id="a_condition_matters",
        ),
    ],
)
def test_inline_statements_compare_as_iam_reads_them(
    left: dict[str, object], right: dict[str, object], same: bool
) -> None:
    a, b = _set("a", inline=_inline(left)), _set("b", inline=_inline(right))

    assert (capability_of(a) == capability_of(b)) is same


def test_exact_duplicates_merge_and_admin_like_sets_are_recognised() -> None:
    star = _inline({"Effect": "Allow", "Action": "*", "Resource": "*"})
    admin, copy = _set("Admin", managed=(ADMIN,)), _set("AdminCopy", managed=(ADMIN,))

    assert capability_of(admin) == capability_of(copy)
    assert capability_of(admin).admin_like and capability_of(_set("x", inline=star)).admin_like
    assert not capability_of(_set("ro", managed=(READ_ONLY,))).admin_like


def test_an_inline_policy_that_is_not_json_is_kept_as_text_with_ids_abstracted() -> None:
    cap = capability_of(_set("odd", inline="not json 111111111111"))

    assert cap.unparsed == "not json {account}" and cap.statements == ()


ACCOUNTS = {
    "111111111111": Account("111111111111", "prod-a", "Production EU", {"env": "prod"}),
    "222222222222": Account("222222222222", "sandbox", "Root", {}),
}


def test_environments_from_ou_names_and_from_a_tag() -> None:
    assert environments("ou", ACCOUNTS) == {
        "111111111111": "production-eu",
        "222222222222": "root",
    }
    assert environments("tag:env", ACCOUNTS) == {
        "111111111111": "prod",
        "222222222222": "untagged",
    }


def test_environments_from_a_file_with_comments_and_commas(tmp_path: Path) -> None:
    file = tmp_path / "envs"
    file.write_text("# account environment\n111111111111, Prod\n\n222222222222 dev  # lab\n")

    assert environments(str(file), ACCOUNTS) == {"111111111111": "prod", "222222222222": "dev"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("1111 prod\n", ":1: '1111 prod'", id="short_account_id"),
        pytest.param("111111111111\n", ":1: '111111111111'", id="no_environment"),
        pytest.param(
            "111111111111 prod\n",
            "no environment for account(s) 222222222222 (sandbox)",
            id="an_account_left_out",
        ),
    ],
)
def test_a_bad_environments_file_is_named_with_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    file = tmp_path / "envs"
    file.write_text(text)

    with pytest.raises(EnvironmentsError) as raised:
        environments(str(file), ACCOUNTS)
    assert message in str(raised.value)


def test_an_environments_file_that_does_not_exist_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentsError, match="expected ou, tag:KEY or a file"):
        environments(str(tmp_path / "missing"), ACCOUNTS)


def _reads(*actions: str) -> PermissionSet:
    return _set(
        f"reads-{len(actions)}",
        inline=_inline({"Effect": "Allow", "Action": list(actions), "Resource": "*"}),
    )


READS = ("s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:GetObjectVersion")


@pytest.mark.parametrize(("threshold", "reported"), [(0.8, True), (0.81, False)])
def test_near_duplicates_are_reported_at_the_threshold_with_what_differs(
    threshold: float, reported: bool
) -> None:
    four, five = _reads(*READS), _reads(*READS, "s3:PutObject")
    found = near_duplicates(_labels(four, five, _set("admin", managed=(ADMIN,))), threshold)

    if reported:
        assert found == (
            NearDuplicate("reads-4", "reads-5", 0.8, (), ("Allow s3:putobject on *",)),
        )
    else:
        assert found == ()


def test_the_similarity_option_refuses_what_is_not_a_fraction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for bad in ("0", "1.5", "nan", "most"):
        with pytest.raises(SystemExit) as exited:
            main(["import", "aws", "--output", "out", "--similarity", bad])
        assert exited.value.code == 2
        assert f"'{bad}' is not a number above 0 and at most 1" in capsys.readouterr().err


def test_a_permissions_boundary_is_part_of_what_a_set_grants() -> None:
    bounded = PermissionSet(
        "arn:ps/a", "Admin", "PT1H", (ADMIN,), (), None, "customer /no-iam-users"
    )
    free = _set("AdminFree", managed=(ADMIN,))

    caps = capabilities([bounded, free])

    assert caps[bounded.arn] != caps[free.arn]
    assert "within boundary no-iam-users" in caps[bounded.arn].describe()
    _, proposed = propose_permission_set(
        "admins", [Source(s.name, caps[s.arn], s.name) for s in (bounded, free)]
    )
    # one set capped, the other not: merging them would change one, so it is left to review
    assert proposed["ReviewBoundaries"] == ["none", "customer /no-iam-users"]
    assert "PermissionsBoundary" not in proposed


def test_sets_under_one_boundary_propose_a_set_under_it() -> None:
    sets = [
        PermissionSet(f"arn:ps/{n}", n, "PT1H", (READ_ONLY,), (), None, "arn:aws:iam::aws:policy/B")
        for n in ("a", "b")
    ]
    caps = capabilities(sets)

    _, proposed = propose_permission_set("ro", [Source(s.name, caps[s.arn], s.name) for s in sets])

    assert proposed["PermissionsBoundary"] == {"ManagedPolicyArn": "arn:aws:iam::aws:policy/B"}
