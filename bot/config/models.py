"""The strict pydantic models of roles.yaml and approvers.yaml, and the validated
configuration (``JitConfig``) the rest of the bot reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from bot.durations import InvalidDuration, format_duration, parse_duration
from providers.base import TargetSpec

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HANDLE = re.compile(r"^@[a-z0-9][a-z0-9._-]*$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ENTRY_HELP = "a Slack user id (U0123ABCD), an email address or a user-group handle (@sre-leads)"
GOOGLE_GROUP = "google:"  # google:<group email>: a Google Workspace group
DURATION_HELP = "a duration such as 30m, 2h or 1h30m (a number followed by d, h, m or s)"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected {DURATION_HELP}")
    if not isinstance(value, str):
        # YAML reads "90" (and even "1:30") as a number; the unit is what is missing.
        raise ValueError(f"{value} has no unit; expected {DURATION_HELP}")
    try:
        return parse_duration(value)
    except InvalidDuration as exc:
        # parse_duration's own advice is worded for Slack users; keep only the diagnosis.
        reason = str(exc).split(";")[0]
        raise ValueError(f"{reason}; expected {DURATION_HELP}") from None


def _entry(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected {ENTRY_HELP}")
    text = value.strip()
    if text.lower().startswith(GOOGLE_GROUP):
        # A Google Workspace group, resolved through the Admin SDK (bot/google_groups.py).
        group = text[len(GOOGLE_GROUP) :].strip()
        if not EMAIL.match(group):
            raise ValueError(
                f"'{value}' is not a valid Google group entry; expected google:<group email>, "
                "for example google:sre-leads@example.com"
            )
        return f"{GOOGLE_GROUP}{group.lower()}"
    if USER_ID.match(text) or EMAIL.match(text) or HANDLE.match(text.lower()):
        return text.lower() if "@" in text else text
    hint = ""
    if HANDLE.match(f"@{text.lower()}"):
        hint = f" (did you mean '@{text}'? user-group handles start with @)"
    raise ValueError(f"'{value}' is not a valid entry{hint}; expected {ENTRY_HELP}")


def _domain(value: Any) -> str:
    text = value.strip().lower().removeprefix("@") if isinstance(value, str) else ""
    if not DOMAIN.match(text):
        raise ValueError(
            f"'{value}' is not an email domain; expected a domain such as example.com "
            "(the part of an email after the @)"
        )
    return text


# Names are shown as options in Slack's menus, whose text holds 75 characters.
NAME_MAX = 64


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ValueError(
            f"'{value}' is not a valid name; expected lower-case letters, digits, '-' and '_' "
            "(for example prod-support)"
        )
    if len(value) > NAME_MAX:
        raise ValueError(
            f"'{value[:NAME_MAX]}…' is {len(value)} characters long; expected a name of at "
            f"most {NAME_MAX} characters"
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Entry = Annotated[str, BeforeValidator(_entry)]
Name = Annotated[str, BeforeValidator(_name)]
EmailDomain = Annotated[str, BeforeValidator(_domain)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Strict):
    description: str = ""
    max_duration: Duration
    default_duration: Duration | None = None
    requesters: Annotated[list[Entry], Field(min_length=1)] | None = Field(
        default=None, description="who may request; omitted means the workspace's full members"
    )
    # Guests (multi- and single-channel) may request, approve and hold this role; bots,
    # deactivated accounts and accounts of other workspaces never may.
    allow_guests: bool = False
    # Targets stay raw here: each is parsed by its provider's model in _parse_targets.
    environments: dict[Name, Annotated[list[Any], Field(min_length=1)]] = Field(min_length=1)
    # How long before its access ends the requester is told, with Extend and End access
    # now buttons (bot/operations/nudging.py); null: never.
    remind_before_expiry: Duration | None = timedelta(minutes=10)

    @property
    def effective_default(self) -> timedelta:
        return self.default_duration or min(self.max_duration, timedelta(hours=1))


class RolesFile(_Strict):
    roles: dict[Name, Role] = Field(min_length=1)


class BreakGlass(_Strict):
    """Access granted at once, without approval, during an incident: only for the rule's
    roles × environments, for at most ``max_duration``, and ``per_person_per_day`` times
    in any 24 hours per person. Every use is announced loudly (bot/operations/
    breaking_glass.py)."""

    max_duration: Duration
    per_person_per_day: int = Field(ge=1, le=100)

    @field_validator("max_duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"{format_duration(value)} is not positive; expected {DURATION_HELP}")
        return value


class ApproverGroup(_Strict):
    """An approvers entry with options, ``{group: security, quiet: true}``: a quiet group
    may approve but gets no DM; its members decide from the App Home or with
    ``/jit approve <id>``."""

    group: str
    quiet: bool = False


def _approver_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "tag:group"
    return "tag:options" if isinstance(value, dict) else None


# A group's name, or the group with options; errors name only the form that was written
# (the "tag:" parts of their paths are dropped in bot/config/messages.py).
ApproverEntry = Annotated[
    Annotated[str, Tag("tag:group")] | Annotated[ApproverGroup, Tag("tag:options")],
    Discriminator(
        _approver_kind,
        custom_error_type="approver_entry",
        custom_error_message="expected a group name, or {group: <name>, quiet: true}",
    ),
]


class Rule(_Strict):
    roles: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    environments: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    requesters: Annotated[list[Entry], Field(min_length=1)] | None = Field(
        default=None, description="the rule applies only to these requesters"
    )
    approvers: list[ApproverEntry] = Field(default_factory=list)
    required_approvals: int = Field(default=1, ge=1, le=10)
    auto_approve: bool = False
    allow_self_approval: bool | None = None
    break_glass: BreakGlass | None = None
    # An extension of at most this long is granted without asking the approvers, as
    # long as the total from the first grant stays within the role's max_duration
    # (bot/extension.py).
    extend_without_approval_up_to: Duration | None = None
    # Groups told of each request without buttons: they see it, they do not decide it.
    notify: list[str] = Field(default_factory=list)
    # A pending request reminds the approvers it asked after this long, then after twice
    # as long each time, in a threaded reply to their DM (bot/operations/reminding.py);
    # null: never.
    remind_after: Duration | None = timedelta(minutes=15)
    # Once a request has waited escalate_after, the escalate_to group may decide it too
    # and is asked with buttons (bot/operations/escalating.py).
    escalate_to: str | None = None
    escalate_after: Duration | None = None

    @property
    def approver_groups(self) -> list[str]:
        """Every group that may approve, quiet ones included."""
        return [a if isinstance(a, str) else a.group for a in self.approvers]

    @property
    def quiet_groups(self) -> list[str]:
        return [a.group for a in self.approvers if not isinstance(a, str) and a.quiet]

    def matches(self, role: str, environment: str) -> bool:
        return ("*" in self.roles or role in self.roles) and (
            "*" in self.environments or environment in self.environments
        )

    @field_validator("remind_after", "escalate_after")
    @classmethod
    def _at_least_a_minute(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(minutes=1):
            raise ValueError(
                f"{format_duration(value)} is too short; expected at least 1m (people are "
                "asked again after it)"
            )
        return value

    @model_validator(mode="after")
    def _approvers_or_auto(self) -> Rule:
        if self.auto_approve and self.approvers:
            raise ValueError("has both auto_approve: true and approvers; expected one or the other")
        if not self.auto_approve and not self.approvers:
            raise ValueError(
                "has neither approvers nor auto_approve; expected approvers (group names "
                "from 'groups') or auto_approve: true"
            )
        if self.auto_approve and self.break_glass is not None:
            raise ValueError(
                "has both auto_approve: true and break_glass; expected approvers with "
                "break_glass (the approvers are told of every break-glass use)"
            )
        if (self.escalate_to is None) != (self.escalate_after is None):
            raise ValueError(
                "names only one of escalate_to and escalate_after; expected both (the group "
                "asked, and how long a request waits before it is asked) or neither"
            )
        if self.auto_approve and self.notify:
            raise ValueError(
                "has both auto_approve: true and notify; expected one or the other (an "
                "auto-approved request is posted to the audit channel, and nobody else is told)"
            )
        if self.auto_approve and self.escalate_to is not None:
            raise ValueError(
                "has both auto_approve: true and escalate_to; expected one or the other "
                "(an auto-approved request never waits for anyone)"
            )
        if self.auto_approve and self.extend_without_approval_up_to is not None:
            raise ValueError(
                "has both auto_approve: true and extend_without_approval_up_to; expected "
                "one or the other (auto_approve already extends without approval)"
            )
        return self


class Settings(_Strict):
    pending_ttl: Duration = timedelta(hours=1)
    allow_self_approval: bool = False
    sweep_interval: Duration = timedelta(seconds=30)
    # People who may run /jit sync besides approvers.
    admins: list[Entry] = Field(default_factory=list)
    # How often cloud assignments are compared with the grants the database knows.
    reconcile_interval: Duration = timedelta(minutes=10)
    # Remove cloud assignments that no jit-bot grant explains (otherwise only report them).
    revoke_unknown: bool = False
    # Per-person quotas (bot/quotas.py), so one account cannot bury the approvers in DMs
    # or keep the bots busy re-reading Slack and the clouds.
    max_pending_per_person: int = Field(default=10, ge=1, le=1000)
    max_requests_per_person_per_hour: int = Field(default=30, ge=1, le=10000)
    sync_per_person_per_hour: int = Field(default=10, ge=1, le=1000)
    # Revoke calls made at once to one provider (for webhooks: to one receiving service).
    # One that hangs holds up only these; every other provider keeps its own.
    revoke_concurrency: int = Field(default=8, ge=1, le=64)
    # One revocation's time, all timeouts and retries included; then it is revoke_failed,
    # announced, and retried by the sweeper.
    revoke_deadline: Duration = timedelta(minutes=2)
    # The Slack email is what names the cloud principal, and whoever can set an email
    # could otherwise pick any cloud user: only these domains are served (required as
    # soon as a provider hands out real access; see check_email_domains).
    allowed_email_domains: list[EmailDomain] = Field(default_factory=list)
    # How long the outbox keeps a message it sent (or Slack refused for good) before
    # deleting it (bot/slack/outbox_retention.py); what happened stays in the audit trail.
    keep_sent_messages: Duration = timedelta(days=30)

    @field_validator("sweep_interval")
    @classmethod
    def _sweep_often_enough(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=30):
            raise ValueError(
                f"{format_duration(value)} is too long; expected at most 30s "
                "(the sweeper is the backstop for revocation)"
            )
        return value

    @field_validator("keep_sent_messages")
    @classmethod
    def _kept_a_day(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):
            raise ValueError(
                f"{format_duration(value)} is too short; expected at least 1d (a message "
                "sent is kept a while to tell what was posted when)"
            )
        return value

    @field_validator("revoke_deadline")
    @classmethod
    def _deadline_in_reach(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError(
                f"{format_duration(value)} is out of range; expected between 1s and 1h "
                "(long enough for a provider's retries, short enough to notice a hang)"
            )
        return value


class ApproversFile(_Strict):
    # An empty group could never approve anything: requests would wait until they expire.
    groups: dict[Name, Annotated[list[Entry], Field(min_length=1)]] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)
    settings: Settings = Field(default_factory=Settings)


@dataclass(frozen=True)
class JitConfig:
    """Both files, validated, with every target parsed into its provider's model."""

    roles: dict[str, Role]
    targets: dict[tuple[str, str], list[TargetSpec]]
    groups: dict[str, list[str]]
    rules: list[Rule]
    settings: Settings
    roles_file: str = "roles.yaml"
    approvers_file: str = "approvers.yaml"

    def environments(self, role: str) -> list[str]:
        return list(self.roles[role].environments)

    def allows_self_approval(self, rule: Rule) -> bool:
        if rule.allow_self_approval is not None:
            return rule.allow_self_approval
        return self.settings.allow_self_approval
