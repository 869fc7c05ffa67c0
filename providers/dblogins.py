"""What the ``postgresql`` and ``mysql`` providers share: the fields of a database target,
how a person's login is named from their email, and generated passwords.

Names that reach SQL are checked twice: here, against a strict pattern (so a name the
server would silently truncate, or one with quotes in it, never gets as far as a
statement), and again by each driver's identifier quoting when the statement is built.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Annotated, Literal

from pydantic import Field, field_validator

from providers.base import ProviderError, TargetSpec, one_clean_line

#: A group role as roles.yaml may name it: a plain SQL identifier, hyphens allowed.
GROUP_ROLE = r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$"
#: A login template: one ``{email}`` or ``{local}`` with plain characters around it.
LOGIN_TEMPLATE = r"^[a-z0-9_.@+-]*\{(email|local)\}[a-z0-9_.@+-]*$"
# A login made from an email: lower case letters, digits and the few signs emails use.
_LOGIN_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.@+-]*$")
#: ``credentials`` of a target whose people get passwords from the bot ("Show credentials").
GENERATED = "generated"
#: What a password generated for ``credentials: generated`` is made of (URL-safe, so it
#: can be pasted into a connection URL as it is).
PASSWORD_BYTES = 24


class DatabaseTarget(TargetSpec):
    """One database entry of a role's environment in roles.yaml.

    ``name`` is what approvers see ("orders-prod"); ``dsn_env`` names the environment
    variable holding the bot's admin connection URL, so the URL (and its password) never
    lives in roles.yaml; ``grant_roles`` are existing group roles granted to the person's
    login for the length of the request.
    """

    name: Annotated[str, Field(min_length=1, max_length=100)]
    dsn_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=128)]
    grant_roles: Annotated[
        list[Annotated[str, Field(pattern=GROUP_ROLE)]], Field(min_length=1, max_length=50)
    ]
    #: The database people connect to (shown with generated credentials; the bot's own
    #: connection uses it too). None: the one in the DSN.
    database: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_$-]{1,63}$")] = None
    login_template: Annotated[str, Field(pattern=LOGIN_TEMPLATE, max_length=64)] = "{email}"
    #: Whether revocation ends the person's open sessions on the server.
    end_sessions: bool = True
    #: ``external``: people log in as the company already arranges (IAM, Kerberos,
    #: certificates); ``generated``: the bot sets a password on request, valid until expiry.
    credentials: Literal["external", "generated"] = "external"

    def key(self) -> str:
        # The access a unit gives is its role on its server, to the login its template
        # makes: two targets that differ in name, database, end_sessions or credentials
        # grant the same membership, so another grant still needing it keeps it, and
        # drift finds it explained by either.
        fields = self.model_dump(
            mode="json", include={"provider", "dsn_env", "login_template", "grant_roles"}
        )
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @field_validator("name")
    @classmethod
    def _name_is_one_clean_line(cls, value: str) -> str:
        return one_clean_line(value, "orders-prod")

    @field_validator("grant_roles")
    @classmethod
    def _roles_are_distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names a role twice")
        return value


def login_name(template: str, email: str, *, max_length: int) -> str:
    """The login a person gets on a server: ``template`` with ``{email}`` (the whole
    email, lower case, as Cloud SQL and RDS IAM users are named) or ``{local}`` (the
    part before the @). A name that is not plain, or longer than the server keeps (it
    would be truncated, and two people could end up as one login), is refused."""
    address = email.strip().lower()
    local = address.split("@", 1)[0]
    name = template.replace("{email}", address).replace("{local}", local)
    if not _LOGIN_NAME.fullmatch(name) or address.count("@") != 1:
        raise ProviderError(
            f"cannot name a database login after the email {address!r}: only lower case "
            "letters, digits and . _ + - @ are allowed in login names"
        )
    if len(name.encode()) > max_length:
        raise ProviderError(
            f"the database login {name!r} would be longer than the server allows "
            f"({max_length}); use login_template: '{{local}}' or a shorter template"
        )
    return name


def email_of(template: str, login: str) -> str:
    """The email a login was named after, where the template keeps all of it; otherwise
    the login itself (a ``{local}`` template drops the domain). For people to read only:
    drift matches and revokes by the login (``Holding.principal``)."""
    if "{email}" not in template:
        return login
    prefix, suffix = template.split("{email}")
    if login.startswith(prefix) and login.endswith(suffix) and len(login) > len(prefix + suffix):
        return login[len(prefix) : len(login) - len(suffix)]
    return login


def generate_password() -> str:
    """A fresh random password, never stored: shown once to the person who asked."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def one_unit_per_role(target: DatabaseTarget) -> list[DatabaseTarget]:
    """A target split into one unit per group role: each is granted, kept (another
    grant needs it, or it is standing) and revoked on its own."""
    return [target.model_copy(update={"grant_roles": [role]}) for role in target.grant_roles]


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (a DSN's password, should a driver echo it)."""
    return text.replace(secret, "[redacted]") if secret else text
