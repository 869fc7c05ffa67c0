"""Local mode's parts: a Slack workspace and a webhook service that live in the bot's process.

With no Slack app configured, ``jit-bot serve`` can still be tried end to end: the bot's
real Web API calls go (through ``SLACK_API_URL``) to `bot.local.slack.LocalSlack`, an
embedded Slack Web API that answers as Slack does and refuses what Slack refuses;
`bot.local.sim.SlackSim` sends Slack-signed slash commands, clicks, modal submissions and
events (the Home tab opened) to the bot's real ``/slack/events`` (signed as
`bot.local.signing` does); and the bundled roles use the real webhook provider
pointed at `bot.local.receiver.WebhookReceiver`, which verifies each signature and keeps
what it was asked to grant. The test suite drives the bot with the very same parts.

Only local mode and the tests use this package; the bot's normal start-up reads one
function of it (``assembly.wanted``: is a Slack app configured?) and nothing else.
"""
