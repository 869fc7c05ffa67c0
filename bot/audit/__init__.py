"""The audit trail: append, verify, export.

Every event is a row in the append-only ``audit_event`` table and, through the outbox, a
line in the audit channel, written in the same transaction as the change it records.
Events form a keyed hash chain: each event's hash is an HMAC, under a key that is not in
the database (bot/audit_key.py), over the previous event's hash and its own content (its
id and the id of the key included). Changing, removing or reordering an event breaks the
chain from that point on, and without the key nobody can re-chain what follows, so
``jit-bot audit verify`` names the first event that no longer fits. Events from before
the chain was keyed keep their plain SHA-256 hashes; the first keyed event records the
change of key and, through its HMAC, covers them. That adoption from no key happens once
per trail: an unkeyed event after a keyed one, a second adoption, or an unkeyed change of
key (a trail that was keyed, stripped and re-adopted) fails verify. What only SHA-256
chains cannot show (a whole unkeyed part rewritten before the adoption) the channel
shows, so verify names the adoption boundary every time. (Removing events from the very end
leaves a shorter valid chain; the audit channel, where every post carries the event's
full hash, is the witness for that: ``audit verify --against-slack``.)

The grants export is built from chained events only, so every fact in it is covered.

- ``trail``: appending (``record``, ``record_by_bot``, ``record_all``, ``adopt_key``) and
  the hashes;
- ``verification``: ``verify`` and the ``seals`` the audit channel is compared with;
- ``exporting``: ``export`` of events or grants, for auditors.
"""

from bot.audit.exporting import export
from bot.audit.trail import (
    KEY_CHANGED,
    Entry,
    adopt_key,
    chain_hash,
    jsonable,
    keyed_hash,
    record,
    record_all,
    record_by_bot,
    signing_info,
)
from bot.audit.verification import Verdict, seals, verify

__all__ = [
    "KEY_CHANGED",
    "Entry",
    "Verdict",
    "adopt_key",
    "chain_hash",
    "export",
    "jsonable",
    "keyed_hash",
    "record",
    "record_all",
    "record_by_bot",
    "seals",
    "signing_info",
    "verify",
]
