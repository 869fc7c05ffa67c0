"""Settings from the environment (the runtime contract in DESIGN.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class MissingSettings(Exception):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"missing environment variable(s): {', '.join(names)}. Create the Slack app from "
            "slack-manifest.yaml (docs/slack.md), install it to your workspace and set "
            "SLACK_BOT_TOKEN (Bot User OAuth Token, xoxb-…) and SLACK_SIGNING_SECRET (Basic "
            "Information → Signing Secret)."
        )


@dataclass(frozen=True)
class Settings:
    bot_token: str
    signing_secret: str
    app_token: str | None = None
    api_url: str | None = None
    audit_channel: str | None = None
    # Where every break-glass is announced (the audit channel when unset).
    security_channel: str | None = None
    database_url: str = "sqlite:///jit-bot.db"
    roles_file: str = "roles.yaml"
    approvers_file: str = "approvers.yaml"
    port: int = 3000
    # The audit chain's key (bot/audit_key.py); never in the database, never printed.
    audit_key: str | None = None
    audit_key_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        missing = [n for n in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET") if not env.get(n)]
        if missing:
            raise MissingSettings(missing)
        return cls(
            bot_token=env["SLACK_BOT_TOKEN"],
            signing_secret=env["SLACK_SIGNING_SECRET"],
            app_token=env.get("SLACK_APP_TOKEN") or None,
            api_url=env.get("SLACK_API_URL") or None,
            audit_channel=env.get("JIT_AUDIT_CHANNEL") or None,
            security_channel=env.get("JIT_SECURITY_CHANNEL") or None,
            database_url=env.get("DATABASE_URL") or cls.database_url,
            roles_file=env.get("JIT_ROLES_FILE") or cls.roles_file,
            approvers_file=env.get("JIT_APPROVERS_FILE") or cls.approvers_file,
            port=int(env.get("PORT") or cls.port),
            audit_key=env.get("JIT_AUDIT_KEY") or None,
            audit_key_file=env.get("JIT_AUDIT_KEY_FILE") or None,
        )

    def __repr__(self) -> str:  # never print secrets
        return (
            f"Settings(database_url={_redact_url(self.database_url)!r}, "
            f"api_url={self.api_url!r}, socket_mode={bool(self.app_token)}, port={self.port})"
        )


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
