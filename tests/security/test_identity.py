"""Identity binding: the Slack email is what names the cloud principal, so it is checked,
shown and compared.

Each test drives the bot over signed HTTP as an attacker (or an unlucky user) would, on
SQLite and PostgreSQL, and asserts on what the fake Slack and the fake cloud received:
- an unconfirmed email, or one outside ``settings.allowed_email_domains``, is refused
  when asking and when deciding;
- the approver's DM, the requester's DM and the audit channel name the principal;
- the requester is read afresh from Slack at grant time, and a changed email fails the
  grant loudly;
- a second Slack account of the requester (same email, or one a provider's domain map
  folds onto it) cannot approve, and one person's accounts count once.
"""

from __future__ import annotations

from collections.abc import Callable

from providers.fake import FakeProvider
from tests.conftest import ALICE, APPROVERS_YAML, BOB, CAROL, Bot
from tests.e2e.helpers import click, deny_forms, latest, submit

ALICE_AGAIN = "UALICE2"  # a second Slack account that carries alice's email
BOB_AGAIN = "UBOB2"  # a second Slack account that carries bob's email


def _in_sre_leads(bot: Bot, *extra: str) -> None:
    bot.slack.add_usergroup("SSRE", "sre-leads", [BOB, CAROL, *extra])


def _refused_request(bot: Bot, user: str, text: str) -> str:
    answer = str(bot.command(user, f"request {text}")["text"])
    bot.settle()
    return answer


def test_second_account_with_requesters_email_cannot_approve(bot: Bot) -> None:
    bot.slack.add_user(ALICE_AGAIN, "Alice@Example.com", "alice-alt")
    _in_sre_leads(bot, ALICE_AGAIN)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert ALICE_AGAIN in bot.service.get(request_id).approvers

    approve = click(bot, ALICE_AGAIN, "approve", request_id)
    deny = click(bot, ALICE_AGAIN, "deny", request_id)

    for answer in (approve, deny):
        assert "same email" in answer and "your own request" in answer
    assert bot.service.get(request_id).status == "pending"
    assert bot.service.votes_of(request_id) == []
    assert bot.provider.calls == []
    assert not deny_forms(bot)


def test_account_a_domain_map_folds_onto_the_requester_cannot_approve(
    make_bot: Callable[..., Bot],
) -> None:
    # Like GCP's JIT_GCP_DOMAIN_MAP=example.org=example.com: alice@example.org is the
    # cloud account alice@example.com, whatever Slack calls the two accounts.
    provider = FakeProvider(domains={"example.org": "example.com"})
    bot = make_bot(
        approvers=APPROVERS_YAML.replace("[example.com]", "[example.com, example.org]"),
        providers={"fake": provider},
    )
    bot.slack.add_user(ALICE_AGAIN, "alice@example.org", "alice-org")
    _in_sre_leads(bot, ALICE_AGAIN)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")

    assert "your own request" in click(bot, ALICE_AGAIN, "approve", request_id)

    assert bot.service.get(request_id).status == "pending"
    assert provider.calls == []


def test_two_accounts_of_one_approver_count_once(bot: Bot) -> None:
    bot.slack.add_user(BOB_AGAIN, "bob@example.com", "bob-alt")
    _in_sre_leads(bot, BOB_AGAIN)
    request_id = submit(bot, ALICE, "db-admin prod 1h migration")  # needs 2 approvals

    assert "(1 of 2)" in click(bot, BOB, "approve", request_id)
    second = click(bot, BOB_AGAIN, "approve", request_id)

    assert "one person counts once" in second
    assert bot.service.get(request_id).status == "pending"
    assert [v.voter_id for v in bot.service.votes_of(request_id)] == [BOB]
    assert bot.provider.calls == []
    assert "granting access now" in click(bot, CAROL, "approve", request_id)
    assert bot.service.get(request_id).status == "active"


def test_unconfirmed_email_is_refused(bot: Bot) -> None:
    bot.slack.add_user(ALICE, "alice@example.com", "alice", email_confirmed=False)

    answer = _refused_request(bot, ALICE, "prod-support prod 1h INC-1")

    assert "unconfirmed" in answer and "alice@example.com" in answer
    assert bot.service.mine(ALICE) == []
    assert bot.slack.messages_in(BOB) == [] and bot.slack.messages_in(CAROL) == []
    assert bot.provider.calls == []


def test_approver_with_unconfirmed_email_cannot_decide(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.slack.add_user(BOB, "bob@example.com", "bob", email_confirmed=False)
    bot.service.sync("jit-bot")  # the cached, confirmed bob is forgotten

    assert "unconfirmed" in click(bot, BOB, "approve", request_id)
    assert "unconfirmed" in click(bot, BOB, "deny", request_id)

    assert bot.service.get(request_id).status == "pending"
    assert bot.service.votes_of(request_id) == []
    assert bot.provider.calls == []


def test_email_outside_allowed_domains_is_refused(bot: Bot) -> None:
    # An account whose email someone pointed at a mailbox of another organisation.
    bot.slack.add_user(ALICE, "alice@example.com.evil.test", "alice")

    answer = _refused_request(bot, ALICE, "db-admin dev 1h fix")  # dev is auto-approved

    assert "outside the email domains" in answer and "example.com" in answer
    assert bot.service.mine(ALICE) == []
    assert bot.provider.calls == []


def test_approver_outside_allowed_domains_cannot_approve(bot: Bot) -> None:
    bot.slack.add_user(CAROL, "carol@partner.test", "carol")
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")

    assert "outside the email domains" in click(bot, CAROL, "approve", request_id)

    assert bot.service.get(request_id).status == "pending"
    assert bot.provider.calls == []


def test_email_changed_since_request_fails_grant(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    # Between the request and the approval, someone (an admin, SCIM) repoints the account
    # at another cloud user. The bot's cache still holds the old email.
    bot.slack.add_user(ALICE, "ceo@example.com", "alice")

    click(bot, BOB, "approve", request_id)

    request = bot.service.get(request_id)
    assert request.status == "failed"
    assert "email changed" in (request.error or "")
    assert bot.provider.calls == []
    assert "failed" in bot.dms_to(ALICE)[-1]["text"]
    for approver in (BOB, CAROL):
        shown = str(latest(bot.dms_to(approver)[0])["blocks"])
        assert "email changed" in shown and "ceo@example.com" in shown
        assert "&lt;@" not in shown  # said in words, not as mention markup shown escaped
    [failed] = [e for e in bot.service.audit_events(request_id) if e.action == "grant_failed"]
    assert failed.details["reason"] == "identity_changed"
    assert any("grant_failed" in post and "ceo@example.com" in post for post in bot.audit_posts())


def test_unchanged_email_is_granted_after_the_fresh_read(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    before = len(bot.slack.calls_to("users.info"))

    click(bot, BOB, "approve", request_id)

    assert bot.service.get(request_id).status == "active"
    # Read from Slack at grant time although the cache still held alice.
    assert len(bot.slack.calls_to("users.info")) > before


def test_approver_dm_shows_principal(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")

    asked = str(latest(bot.dms_to(BOB)[0])["blocks"])
    assert "Access goes to" in asked and "`alice@example.com`" in asked
    assert "alice@example.com" in str(bot.dms_to(ALICE)[0]["blocks"])  # submitted
    assert any(
        "requested" in p and "requester_email=alice@example.com" in p for p in bot.audit_posts()
    )

    click(bot, BOB, "approve", request_id)

    # Once granted, each target names the cloud identity that received it.
    granted = str(latest(bot.dms_to(BOB)[0])["blocks"])
    assert "fake resource `prod-db`: `fake:alice@example.com`" in granted
    assert "fake:alice@example.com" in str(bot.dms_to(ALICE)[-1]["blocks"])
    assert any("*granted*" in p and "fake:alice@example.com" in p for p in bot.audit_posts())
    targets = bot.service.targets_of(request_id)
    assert {t.principal for t in targets} == {"fake:alice@example.com"}


def test_approver_dm_shows_the_mapped_account_before_the_grant(
    make_bot: Callable[..., Bot],
) -> None:
    provider = FakeProvider(domains={"example.com": "corp.example.net"})
    bot = make_bot(providers={"fake": provider})

    submit(bot, ALICE, "prod-support prod 1h INC-1")

    asked = str(latest(bot.dms_to(BOB)[0])["blocks"])
    assert "`alice@example.com`" in asked
    assert "fake resource `prod-db`: `alice@corp.example.net`" in asked


def test_a_request_only_a_second_account_of_the_requester_could_approve_is_refused(
    bot: Bot,
) -> None:
    # sre-leads is alice's second account and bob: prod-support needs one approval, so it
    # can still be asked; db-admin in prod needs two people other than alice.
    bot.slack.add_user(ALICE_AGAIN, "alice@example.com", "alice-alt")
    bot.slack.add_usergroup("SSRE", "sre-leads", [ALICE_AGAIN])
    answer = _refused_request(bot, ALICE, "prod-support prod 1h INC-1")

    assert "needs 1 approval(s) but only 0 approver(s) other than you" in answer
    assert bot.service.mine(ALICE) == []
    assert bot.slack.messages_in(ALICE_AGAIN) == []


def test_two_accounts_of_one_approver_are_not_counted_as_two_possible_approvers(
    make_bot: Callable[..., Bot],
) -> None:
    # db-admin in prod needs two approvals from sre-leads + security; here the only
    # approvers are bob's two accounts, so no two people can ever approve it.
    bot = make_bot(
        approvers=APPROVERS_YAML.replace("security: [USEC1, sec2@example.com]", "security: [UBOB2]")
    )
    bot.slack.add_user(BOB_AGAIN, "bob@example.com", "bob-alt")
    bot.slack.add_usergroup("SSRE", "sre-leads", [BOB, BOB_AGAIN])

    answer = _refused_request(bot, ALICE, "db-admin prod 1h migration")

    assert "needs 2 approval(s) but only 1 approver(s) other than you" in answer
    assert bot.service.mine(ALICE) == []


def test_a_second_account_of_the_requester_is_not_shown_the_request_to_decide(bot: Bot) -> None:
    bot.slack.add_user(ALICE_AGAIN, "alice@example.com", "alice-alt")
    _in_sre_leads(bot, ALICE_AGAIN)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")

    assert request_id not in str(bot.command(ALICE_AGAIN, "list")["text"])
    assert request_id in str(bot.command(BOB, "list")["text"])
