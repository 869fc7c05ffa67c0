"""Local mode's choices, made before anything runs: which config (the user's, or the
bundled example pointed at the embedded receiver), who the people are, the generated
secrets, and the bot's ``Settings`` and environment.

Nothing here changes how the bot behaves: it gets what a deployment would give it, a
token, a signing secret, ``SLACK_API_URL``, an audit channel, a database and a config.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.local import people as people_of
from bot.local.people import People
from bot.local.stand_ins import stand_ins
from bot.settings import Settings
from providers.base import Provider
from providers.webhook import WebhookProvider

# The audit channel the bot posts to, shown on the page.
AUDIT_CHANNEL = "C0JITAUDIT"
AUDIT_CHANNEL_NAME = "jit-audit"
# Its own file, so local mode never mixes with a real deployment's data; in the run's own
# temporary directory, so each run starts afresh, as the embedded Slack and receiver do
# (access granted in an earlier run lived only in that run's receiver).
DATABASE_FILE = "jit-bot-local.db"
DEFAULT_PORT = 3000
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local"
# The url every webhook target of the bundled roles.yaml names; replaced by the
# embedded receiver's, whose port is only known once it listens.
EXAMPLE_RECEIVER_URL = "http://127.0.0.1:9/jit"
EXAMPLE_SECRET_ENV = "JIT_LOCAL_WEBHOOK_SECRET"


def wanted(env: Mapping[str, str]) -> bool:
    """Local mode is for when no Slack app is connected: neither token is set. With one
    of them set, the bot starts as usual and names the missing one."""
    return not env.get("SLACK_BOT_TOKEN") and not env.get("SLACK_SIGNING_SECRET")


@dataclass(frozen=True)
class Config:
    """The config local mode runs with."""

    roles_file: Path
    approvers_file: Path
    people: People
    bundled: bool

    def describe(self) -> str:
        if self.bundled:
            return (
                "the bundled example in examples/local; JIT_ROLES_FILE and "
                "JIT_APPROVERS_FILE name your own"
            )
        return f"{self.roles_file} and {self.approvers_file}"


def choose_config(env: Mapping[str, str], cwd: Path) -> Config:
    """The config named by JIT_ROLES_FILE / JIT_APPROVERS_FILE (either one; the other
    then defaults to the usual name in ``cwd``), else the bundled example.

    Only a config one names is taken: a checkout's own roles.yaml is the sample for a real
    deployment (AWS, GCP, Azure), which local mode cannot grant, so a clean clone's
    ``make run`` shows the bundled example. A named file that is missing or wrong is
    reported by the bot as it would be in production, never swapped for the example."""
    roles_name, approvers_name = env.get("JIT_ROLES_FILE"), env.get("JIT_APPROVERS_FILE")
    if roles_name or approvers_name:
        roles = cwd / (roles_name or "roles.yaml")
        approvers = cwd / (approvers_name or "approvers.yaml")
        return Config(roles, approvers, people_of.from_config(roles, approvers), bundled=False)
    return Config(
        EXAMPLE / "roles.yaml",
        EXAMPLE / "approvers.yaml",
        people_of.from_people_file(EXAMPLE / "people.yaml"),
        bundled=True,
    )


def render_example(config: Config, receiver_url: str, workdir: Path) -> Config:
    """The bundled roles.yaml with its webhook targets pointed at ``receiver_url``, written
    to ``workdir`` (line for line the same, so any message about it still points right)."""
    if not config.bundled:
        return config
    text = config.roles_file.read_text(encoding="utf-8")
    rendered = workdir / "roles.yaml"
    rendered.write_text(text.replace(EXAMPLE_RECEIVER_URL, receiver_url), encoding="utf-8")
    return Config(rendered, config.approvers_file, config.people, bundled=True)


@dataclass(frozen=True)
class Credentials:
    """Made up for each run: the embedded Slack and receiver are this process's own."""

    bot_token: str
    signing_secret: str
    webhook_secret: str
    # The run's database is its own and goes with it: so does the key its trail is signed
    # with (never a deployment's JIT_AUDIT_KEY / JIT_AUDIT_KEY_FILE).
    audit_key: str

    @classmethod
    def new(cls) -> Credentials:
        return cls(
            bot_token=f"xoxb-local-{secrets.token_hex(12)}",
            signing_secret=secrets.token_hex(32),
            webhook_secret=secrets.token_hex(32),
            audit_key=secrets.token_hex(32),
        )

    def __repr__(self) -> str:  # never print secrets
        return "Credentials(...)"


@dataclass(frozen=True)
class Assembled:
    """What the bot is started with."""

    settings: Settings
    environ: dict[str, str]
    providers: dict[str, Provider]


def assemble(
    env: Mapping[str, str],
    config: Config,
    slack_api_url: str,
    receiver_url: str,
    credentials: Credentials,
    workdir: Path,
) -> Assembled:
    """Settings with the generated credentials, the embedded Slack API and a fresh local
    database, and providers that grant nowhere but the embedded receiver: the real
    webhook provider for the bundled example (its targets name the receiver), stand-ins
    for a config of one's own (bot/local/stand_ins.py). The receiver's key is the one
    generated for this run, whatever the environment says."""
    environ = {**env, EXAMPLE_SECRET_ENV: credentials.webhook_secret}
    providers: dict[str, Provider] = (
        {"webhook": WebhookProvider(environ)}
        if config.bundled
        else stand_ins(environ, receiver_url, EXAMPLE_SECRET_ENV)
    )
    settings = Settings(
        bot_token=credentials.bot_token,
        signing_secret=credentials.signing_secret,
        api_url=slack_api_url,
        audit_channel=AUDIT_CHANNEL,
        database_url=f"sqlite:///{workdir / DATABASE_FILE}",
        roles_file=str(config.roles_file),
        approvers_file=str(config.approvers_file),
        port=int(env.get("PORT") or DEFAULT_PORT),
        audit_key=credentials.audit_key,
    )
    return Assembled(settings, environ, providers)
