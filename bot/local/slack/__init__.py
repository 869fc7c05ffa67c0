"""An embedded Slack Web API: the workspace local mode and the tests talk to."""
