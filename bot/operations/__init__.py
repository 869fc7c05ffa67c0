"""The request lifecycle, one module per family of operations. ``bot.service`` is the
thin façade the Slack edge, the CLI and the runtime call; these modules do the work.

Each operation is a function taking a ``Context`` (the bot's dependencies and this
process's claims) and plain values. Which module holds what:

- ``context``: ``Context``, the dependencies every operation needs, and the
  ``ExpiryScheduler`` interface.
- ``store``: every SQL statement, as named queries (loads, snapshots, the
  compare-and-set updates, what the sweeper finds, votes, holders). Persistence only.
- ``leases``: who works on a request: the in-process claim, the fence, the lease
  renewal and the heartbeat.
- ``transition``: the one way a request moves (compare-and-set, audit, refresh the
  approvers' DMs, tell the requester), and the audit and notification steps it uses.
- ``people``: who people are now: membership, account standing, cloud principals and
  who may approve a request.
- ``provider_calls``: how a provider is called (target, principal, grant context); each
  call is made once, the provider retries its own temporary failures.
- ``requesting``: check a request, store it, ask its approvers.
- ``requesting_again``: "Request again": a person's recent finished requests, and the
  request form filled in from one of them (``bot.templates``).
- ``breaking_glass``: access at once, without approval, within a rule's break-glass
  limits; the break-glass is its recorded approval, then ``granting`` as for any grant.
- ``due``: what the clock has made due (what a sweep does, what an expiry may revoke,
  whose end is near), as named queries beside ``store``.
- ``extending``: ask to keep active access longer (an extension, a request of its own).
- ``prolonging``: apply an approved extension: move the access's end without a lapse and
  without a second grant.
- ``nudging``: tell people their access ends soon, with Extend and End access now.
- ``deciding``: approvers' votes and the requester's cancel; where approvals are decided.
- ``granting``: grant an approved request target by target; roll back a failed one.
- ``credentials``: "Show credentials": a fresh generated database password for the
  holder of active access, checked at the click; audited, never stored.
- ``revoking``: end access early, at expiry, or in batches for the sweeper.
- ``sweeping``: the periodic sweep that makes the world match the database.
- ``reviewing``: the post-incident review of a break-glass use, and its daily reminder.
- ``admin``: ``/jit sync`` and the signals between running bots.
- ``queries``: reads for the Slack edge (a request, mine, awaiting, the audit trail …).
- ``home``: reads for the Home tab (one person's Home; for admins, everyone's active
  access and the break-glass uses to review).
- ``home_refresh``: who has opened the Home, and the refresh of the Homes a transition
  concerns, queued in its transaction (``transition`` calls it for every audited change).

Dependencies run one way, so none imports another in a cycle: ``deciding`` → ``sweeping``
(to expire a stale request at the click) → ``prolonging``, ``granting`` → ``revoking``;
``extending`` → ``prolonging``, ``requesting`` → ``admin``, ``granting``; ``breaking_glass`` →
``requesting``, ``reviewing``; all of them → ``transition``, ``leases``, ``people``,
``provider_calls`` → ``due``, ``store`` and ``context``; ``transition`` → ``home_refresh``;
``home`` → ``queries``, ``reviewing``; ``credentials`` → ``transition``, ``provider_calls``.
"""
