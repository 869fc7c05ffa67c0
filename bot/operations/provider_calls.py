"""How the domain calls a provider: the target, principal and grant context it passes.

The domain calls each grant and revoke once. The provider retries its own temporary
failures under its cloud's rules and one declared budget (providers/resilience.py); a
ProviderError that reaches the domain is final for this attempt, and the sweeper tries a
failed revocation again later."""

from __future__ import annotations

from bot.errors import WrongState
from bot.operations.context import Context
from bot.storage.models import AccessRequest, RequestTarget
from providers.base import GrantContext, Principal, Provider, TargetSpec


def spec(ctx: Context, target: RequestTarget) -> tuple[Provider, TargetSpec]:
    provider = ctx.providers[target.provider]
    return provider, provider.target_model.model_validate(target.spec)


def principal(request: AccessRequest) -> Principal:
    return Principal(slack_user_id=request.requester_id, email=request.requester_email)


def grant_context(request: AccessRequest) -> GrantContext:
    if request.expires_at is None:
        # Set with the move to granting, before any provider is called.
        raise WrongState(f"{request.id} has no expiry yet; nothing was called.")
    return GrantContext(
        request_id=request.id,
        role=request.role,
        environment=request.environment,
        reason=request.reason,
        expires_at=request.expires_at,
    )
