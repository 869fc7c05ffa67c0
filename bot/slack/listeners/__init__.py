"""Bolt listeners by surface, as bolt-python's own ``slack_bolt/listener/`` is laid out:
``commands`` (the /jit command), ``actions`` (buttons and selects), ``views`` (modal
submissions), ``reviews`` (the buttons and the note modal of a break-glass review),
``extensions`` (the Extend button and form), ``again`` ("Request again" on a finished
request), ``credentials`` ("Show credentials" for generated database passwords),
``home`` (the Home tab: opening it, and the clicks made on it), and ``common`` for what
they share. Each surface has its own ``register(app, service, clock)``;
``bot.slack.handlers.register`` calls them all.

Listeners stay thin: acknowledge, parse, call the domain, render with ``bot.slack.blocks``.
"""
