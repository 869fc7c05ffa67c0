"""What the repository promises someone setting jit-bot up: the Procfile starts the bot,
the Slack manifest sends commands and clicks where the bot listens and grants every scope
the bot's Slack calls need, the README opens with the two commands, and CI runs the
README's test command on both databases."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# The bot scope each Slack Web API method the bot calls needs (api.slack.com/methods).
SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
    "views.open": None,  # needs only the trigger_id of an interaction
    "views.update": None,
    "views.publish": None,  # the Home tab: a bot token needs no scope for it
    "conversations.history": "channels:history",  # groups:history for a private channel
}


def _slack_methods_the_bot_calls() -> set[str]:
    """Methods named in bot/: ``client.users_info(`` and ``"chat.update"`` alike. bot/local
    is left out: it is the Slack side of local mode (the methods it answers), not calls;
    so is bot/importer, `jit-bot import`, which talks to clouds and never to Slack."""
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        if {ROOT / "bot" / "local", ROOT / "bot" / "importer"} & set(path.parents):
            continue
        text = path.read_text()
        for name in re.findall(r"client\.([a-z]+_[A-Za-z_]+)\(", text):
            if name != "api_call":
                found.add(name.replace("_", "."))
        found |= set(re.findall(r"\"((?:chat|users|usergroups|views|conversations)\.\w+)\"", text))
    return found


def test_the_manifest_grants_every_scope_the_bots_slack_calls_need() -> None:
    called = _slack_methods_the_bot_calls()
    assert {"chat.postMessage", "users.lookupByEmail", "views.open"} <= called
    unknown = called - SCOPES.keys()
    assert not unknown, f"add {sorted(unknown)} to SCOPES with the scope Slack requires"
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {SCOPES[method] for method in called} - {None}
    assert needed | {"commands"} <= granted, sorted(needed - granted)


def test_the_manifest_sends_the_command_and_clicks_to_the_bots_events_endpoint() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/jit"
    assert command["url"].endswith("/slack/events")
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"] == command["url"]


def test_the_manifest_shows_the_home_tab_and_sends_its_opening_to_the_bot() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    events = manifest["settings"]["event_subscriptions"]
    assert events["request_url"] == manifest["settings"]["interactivity"]["request_url"]
    # app_home_opened needs no scope: the scopes the bot's calls need are checked above.
    assert events["bot_events"] == ["app_home_opened"]
    assert "views.publish" in _slack_methods_the_bot_calls()


def test_the_procfile_runs_the_console_script_the_package_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["jit-bot"] == "bot.cli:main"
    assert (ROOT / "Procfile").read_text().strip() == "web: jit-bot serve"


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    assert readme.index("```sh") < readme.index("\n## ")  # before anything else
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: install$", makefile, re.M)
    assert re.search(r"^test: lint\n\t\$\(BIN\)/pytest$", makefile, re.M)
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    script = ci.read_text()
    assert script.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in script
    assert "JIT_TEST_DATABASE_URL" in script and script.rstrip().endswith("make test")
