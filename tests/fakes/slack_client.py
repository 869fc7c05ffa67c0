"""`SlackSim` now lives in the product (`bot.local.sim`); re-exported for the tests."""

from bot.local.sim import Reply, SlackSim, select_value, text_value

__all__ = ["Reply", "SlackSim", "select_value", "text_value"]
