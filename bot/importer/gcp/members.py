"""Who holds what today, from the IAM bindings read: one holding per person or group
bound, and a note for each kind of binding the import leaves out.

- ``user:`` is the person (their Google email, spelled as Slack knows them when
  ``JIT_GCP_DOMAIN_MAP`` says so);
- ``group:`` reaches its members, nested groups included, when the directory could be
  read; otherwise the group is kept out and the report says so;
- service accounts, domains, ``allUsers``, deleted principals and other non-people are
  skipped, counted by kind: jit-bot grants people;
- a conditional binding is skipped: a roles.yaml target cannot carry its condition;
- a binding of a deleted or unknown role grants nothing and is skipped;
- a binding of a basic role (roles/owner, roles/editor, roles/viewer) is kept, so
  mapping.csv lists it, but no role can grant it: IAM puts no condition on a basic role.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bot.importer.access import Holding
from bot.importer.gcp.estate import BASIC_ROLES, Binding, Estate
from providers.gcp.target import DomainMap

_SHOWN = 5  # names a note lists before "…"


@dataclass(frozen=True)
class Members:
    holdings: tuple[Holding, ...]
    notes: tuple[str, ...]


def holdings(estate: Estate, domains: DomainMap) -> Members:
    kept: list[Holding] = []
    conditional = basic = 0
    gone: Counter[str] = Counter()
    others: Counter[str] = Counter()
    unread: Counter[str] = Counter()
    for binding in estate.bindings:
        role = estate.roles.get(binding.role)
        if binding.condition:
            conditional += 1
        elif role is None or role.deleted:
            gone[binding.role] += 1
        else:
            held = _holding(binding, estate, domains)
            if isinstance(held, Holding):
                kept.append(held)
                basic += binding.role in BASIC_ROLES
            elif held.startswith("group:"):
                unread[held.removeprefix("group:")] += 1
            else:
                others[held] += 1
    notes = [
        *_conditional(conditional),
        *_unread(unread, estate.directory_refusal),
        *_others(others),
        *_gone(gone),
        *_basic(basic),
    ]
    return Members(tuple(kept), tuple(notes))


def _holding(binding: Binding, estate: Estate, domains: DomainMap) -> Holding | str:
    """The holding a binding makes, or the kind of member it is left out as."""
    kind, _, rest = binding.member.partition(":")
    if kind == "user" and "@" in rest and "?" not in rest:
        email = rest.lower()
        return Holding(binding.role, binding.resource, "USER", email, (domains.slack_email(email),))
    if kind == "group" and rest:
        group = rest.lower()
        if group not in estate.groups:
            return f"group:{group}"
        people = tuple(sorted({domains.slack_email(e) for e in estate.groups[group]}))
        return Holding(binding.role, binding.resource, "GROUP", group, people)
    return kind if rest else binding.member


def _listed(names: Counter[str]) -> str:
    shown = sorted(names)[:_SHOWN]
    return ", ".join(shown) + (", …" if len(names) > _SHOWN else "")


def _conditional(count: int) -> list[str]:
    if not count:
        return []
    return [
        f"{count} conditional binding member(s) skipped: a roles.yaml target cannot carry "
        "an IAM condition, so jit-bot could not grant them as they are."
    ]


def _unread(groups: Counter[str], refusal: str) -> list[str]:
    if not groups:
        return []
    return [
        f"{sum(groups.values())} binding(s) of {len(groups)} group(s) kept out "
        f"({_listed(groups)}): their members could not be read. {refusal}".strip()
    ]


def _others(kinds: Counter[str]) -> list[str]:
    if not kinds:
        return []
    counted = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    return [
        f"{sum(kinds.values())} binding member(s) that are not people skipped ({counted}): "
        "jit-bot grants people."
    ]


def _gone(roles: Counter[str]) -> list[str]:
    if not roles:
        return []
    return [
        f"{sum(roles.values())} binding member(s) of deleted, disabled or unknown roles skipped "
        f"({_listed(roles)}): they grant nothing."
    ]


def _basic(count: int) -> list[str]:
    if not count:
        return []
    return [
        f"{count} binding member(s) of basic roles (roles/owner, roles/editor, roles/viewer) "
        "are in mapping.csv with no role: IAM cannot put a condition on a basic role, so "
        "jit-bot cannot grant one. Replace them with predefined roles."
    ]
