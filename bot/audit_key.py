"""The key that signs the audit chain, and where it comes from.

The chain is an HMAC chain so that someone who can write the database but does not hold
the key cannot rewrite an event and re-chain the ones after it. The key therefore never
lives in the database: it comes from ``JIT_AUDIT_KEY``, or from the file named by
``JIT_AUDIT_KEY_FILE`` (how secret managers hand a mounted secret to a process). Each
event records the key's id, a fingerprint that says which key signed it without
revealing it.

With neither set, a bot being tried on a laptop with SQLite still starts: it signs with a
local key file (next to the SQLite file, mode 0600) and says loudly that this protects
nothing against whoever can read that file. On any other database one of them is
required: replicas or containers would each invent a different key in their own
working directory.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 16
LOCAL_KEY_NAME = "jit-bot-audit.key"


class AuditKeyError(Exception):
    """No usable audit key; ``str(error)`` says which setting to fix and how."""


@dataclass(frozen=True)
class AuditKey:
    secret: bytes = field(repr=False)
    source: str  # where it came from, for messages (never the key itself)

    @property
    def key_id(self) -> str:
        """A fingerprint of the key: names it in each event without revealing it."""
        return hmac.new(self.secret, b"jit-bot key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, message: bytes) -> str:
        # The one-shot digest: the same HMAC as hmac.new(...).hexdigest(), without building
        # an object per event (verify signs millions).
        return hmac.digest(self.secret, message, "sha256").hex()


def configured(key: str | None, key_file: str | None) -> AuditKey | None:
    """The key from JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE, or None if neither is set."""
    if key and key_file:
        raise AuditKeyError(
            "both JIT_AUDIT_KEY and JIT_AUDIT_KEY_FILE are set; set only one of them."
        )
    if key:
        return _checked(key.encode(), "JIT_AUDIT_KEY")
    if key_file:
        return from_file(key_file, "JIT_AUDIT_KEY_FILE")
    return None


def from_file(path: str, setting: str) -> AuditKey:
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise AuditKeyError(
            f"{setting}={path} cannot be read ({exc.strerror or exc}); point it at the "
            "file your secret manager mounts."
        ) from None
    return _checked(secret, f"{setting}={path}")


def _checked(secret: bytes, source: str) -> AuditKey:
    if len(secret) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"{source} holds {len(secret)} bytes; an audit key needs at least "
            f"{MIN_KEY_BYTES}, e.g. the output of `openssl rand -hex 32`."
        )
    return AuditKey(secret, source)


def local_key_path(database_url: str, cwd: Path | None = None) -> Path | None:
    """Where a bot without a configured key keeps its own: beside the SQLite file, or in
    the working directory for an in-memory SQLite database; None for any other database,
    which needs JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if url.database not in (None, "", ":memory:"):
        return Path(f"{url.database}.audit-key")
    return (cwd or Path.cwd()) / LOCAL_KEY_NAME


def for_bot(key: str | None, key_file: str | None, database_url: str) -> AuditKey:
    """The key a bot signs with: the configured one, else (SQLite only) the local key file
    (created on first use), with a loud warning."""
    found = configured(key, key_file)
    if found is not None:
        return found
    path = local_key_path(database_url)
    if path is None:
        raise AuditKeyError(
            "no audit key: set JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE (the same key for every "
            "replica, e.g. from your secret manager). A local key file is only for SQLite "
            "trials: on a shared database each process would sign with a key of its own."
        )
    created = _create(path)
    log.warning(
        "AUDIT KEY NOT CONFIGURED: neither JIT_AUDIT_KEY nor JIT_AUDIT_KEY_FILE is set, so "
        "the audit trail is signed with the local key file %s (%s). Whoever can read that "
        "file and write the database can forge the trail. For anything but a trial, set "
        "JIT_AUDIT_KEY_FILE to a secret from your secret manager.",
        path,
        "created now, mode 0600" if created else "already there",
    )
    return _read_local(path)


def for_verifier(key: str | None, key_file: str | None, database_url: str) -> AuditKey:
    """The key ``audit verify`` checks with: the configured one, else an existing local
    key file. Never creates one: a verifier that invents a key proves nothing."""
    found = configured(key, key_file)
    if found is not None:
        return found
    path = local_key_path(database_url)
    if path is None or not path.exists():
        where = "" if path is None else f" (no local key file at {path} either)"
        raise AuditKeyError(
            "no audit key: set JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE to the key the bot signs "
            f"the trail with{where}."
        )
    return _read_local(path)


def _read_local(path: Path) -> AuditKey:
    try:
        return _checked(path.read_bytes().strip(), f"local key file {path}")
    except OSError as exc:
        raise AuditKeyError(f"the local audit key file {path} cannot be read: {exc}") from None


def _create(path: Path) -> bool:
    """Write a fresh key to ``path`` unless one is there; True if this call wrote it.
    Written aside and linked into place, so two bots starting at once never read a
    half-written file and both end up with the same key."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        try:
            os.link(aside, path)
        except FileExistsError:
            return False
        return True
    finally:
        aside.unlink(missing_ok=True)
