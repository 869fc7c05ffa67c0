"""What a ``webhook`` entry of roles.yaml may say: where events go, the key's variable,
timeouts and attempts."""

from __future__ import annotations

import json
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from providers.base import TargetSpec, one_clean_line


class WebhookTarget(TargetSpec):
    """One webhook entry of a role's environment in roles.yaml.

    ``name`` is the access the webhook stands for ("grafana-admin"); approvers see it and
    the receiver gets it as ``target.name``. ``secret_env`` names the environment variable
    holding the HMAC key, so the key itself never lives in roles.yaml.
    """

    provider: Literal["webhook"]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    secret_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=128)]
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 5
    # Lets the url use plain http or reach loopback, link-local or metadata addresses
    # (a receiver on this host, in tests); see providers/egress.py.
    allow_insecure: bool = False

    def key(self) -> str:
        # Where events may be sent from is not part of what is granted; leaving it out
        # keeps keys (and idempotency keys) of grants made before the setting existed.
        fields = self.model_dump(mode="json", exclude={"allow_insecure"})
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @field_validator("name")
    @classmethod
    def _name_is_one_clean_line(cls, value: str) -> str:
        return one_clean_line(value, "grafana-admin")

    @field_validator("url")
    @classmethod
    def _url_is_plain_http(cls, value: str) -> str:
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError("must not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"must be an http:// or https:// URL, not scheme {parts.scheme or '(none)'!r}"
            )
        if not parts.hostname:
            raise ValueError("must name a host, for example https://hooks.example.com/jit")
        if parts.username is not None or parts.password is not None:
            # Credentials in the URL would end up in roles.yaml, logs and Slack messages.
            raise ValueError(
                "must not carry credentials; put the HMAC key in the variable named by secret_env"
            )
        if parts.fragment:
            raise ValueError("must not have a #fragment")
        try:
            parts.port  # noqa: B018 - urlsplit only checks the port when it is read
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        return value


def as_webhook(target: TargetSpec) -> WebhookTarget:
    if not isinstance(target, WebhookTarget):
        raise TypeError(f"the webhook provider cannot handle a {type(target).__name__}")
    return target
