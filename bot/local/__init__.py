"""Local mode: the real bot against an embedded Slack workspace served in the browser."""
