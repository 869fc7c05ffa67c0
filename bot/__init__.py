"""jit-bot: role-based just-in-time cloud access, driven from Slack."""
