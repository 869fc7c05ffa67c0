"""The IAM policy bindings jit-bot writes: one per request, with a condition titled
``jit-bot <request id>`` that expires by itself; and how to read them back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from providers.base import GrantContext

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from google.iam.v1 import policy_pb2
    from google.type import expr_pb2

# Every binding jit-bot writes has a condition titled "jit-bot <request id>"; nothing
# else is ever removed by the bot.
TITLE_PREFIX = "jit-bot "
POLICY_VERSION = 3  # the only version that carries conditions
_EXPIRY = re.compile(r'^request\.time\s*<\s*timestamp\(\s*"([^"]+)"\s*\)$')


def _timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second (truncating moves expiry earlier, never later)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_title(request_id: str) -> str:
    return f"{TITLE_PREFIX}{request_id}"[:100]


def _condition(member: str, role: str, context: GrantContext) -> expr_pb2.Expr:
    from google.type import expr_pb2

    description = (
        f"jit-bot request {context.request_id}: {member.removeprefix('user:')} as "
        f"{context.role} in {context.environment} ({role})"
    )
    return expr_pb2.Expr(
        title=condition_title(context.request_id),
        description=description[:256],
        expression=f'request.time < timestamp("{_timestamp(context.expires_at)}")',
    )


def _ours(binding: policy_pb2.Binding) -> bool:
    return binding.HasField("condition") and binding.condition.title.startswith(TITLE_PREFIX)


def _has(binding: policy_pb2.Binding, member: str) -> bool:
    return member.lower() in (m.lower() for m in binding.members)


def expiry_of(binding: policy_pb2.Binding) -> datetime | None:
    """When a binding's ``request.time < timestamp(…)`` condition ends it, if it has one."""
    return condition_end(binding.condition)


def condition_end(condition: expr_pb2.Expr) -> datetime | None:
    """When a ``request.time < timestamp(…)`` condition stops granting; None for any other."""
    match = _EXPIRY.match(condition.expression.strip())
    if not match:
        return None
    try:
        return datetime.fromisoformat(match.group(1))
    except ValueError:
        return None


def _expired(binding: policy_pb2.Binding, now: datetime) -> bool:
    expiry = expiry_of(binding)
    return expiry is not None and expiry <= now


def _holds(policy: policy_pb2.Policy, role: str, member: str, now: datetime) -> bool:
    """Unconditionally, or through a jit-bot binding that has not expired. Other
    conditions cannot be evaluated here and count as not holding."""
    return any(
        b.role == role
        and _has(b, member)
        and (not b.HasField("condition") or (_ours(b) and not _expired(b, now)))
        for b in policy.bindings
    )


def _standing(policy: policy_pb2.Policy, role: str, member: str) -> bool:
    """Whether ``member`` holds ``role`` here unconditionally: access jit-bot never
    writes, shortens or removes."""
    return any(
        b.role == role and not b.HasField("condition") and _has(b, member) for b in policy.bindings
    )


def _without(binding: policy_pb2.Binding, member: str) -> bool:
    """Take ``member`` out of ``binding``; whether anyone is left in it."""
    others = [m for m in binding.members if m.lower() != member.lower()]
    del binding.members[:]
    binding.members.extend(others)
    return bool(others)
