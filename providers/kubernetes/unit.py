"""One unit of a target: its ClusterRole at one place (a namespace, or the cluster), and
what the provider does with a request's bindings there: make one (a resumed grant finds
its own first), delete them and confirm they are gone, and say who holds access through
them (drift)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from providers.base import ProviderError
from providers.kubernetes import bindings
from providers.kubernetes.bindings import REQUEST, SELECTOR, Seen
from providers.kubernetes.calls import AlreadyExists
from providers.kubernetes.places import Place
from providers.kubernetes.target import KubernetesTarget

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes import client

    from providers.base import GrantContext


@dataclass(frozen=True)
class Unit:
    place: Place
    kube: KubernetesTarget

    @cached_property
    def unit_hash(self) -> str:
        """What the ``jit-bot.io/unit`` annotation of this unit's bindings holds."""
        kube = self.kube
        if self.place.namespace is not None:
            kube = kube.model_copy(update={"namespaces": [self.place.namespace]})
        return bindings.unit_hash(kube.key())

    @property
    def role(self) -> str:
        return self.kube.cluster_role

    def names(self, request_id: str) -> list[str]:
        """The binding's name, ``jit-<request id>``, and the one used when the same
        request binds a second unit in the same place (another ClusterRole or target)."""
        base = bindings.binding_name(request_id)
        return [base, f"{base}-{self.unit_hash[:8]}"]

    def of_request(self, request_id: str) -> list[Seen]:
        """This request's bindings of this unit, as listed by jit-bot's label."""
        return [
            seen
            for seen in self.place.find(SELECTOR)
            if seen.for_unit(request_id, self.role, self.unit_hash)
        ]

    def standing(self, user: str) -> bool:
        return any(self._outside_jit_bot(seen, user) for seen in self.place.find())

    # ------------------------------------------------------------------ grant

    def bind(self, user: str, email: str, context: GrantContext) -> bool:
        """Bind the ClusterRole to ``user`` here; True when someone else's binding gives
        it already (standing access: nothing is written). This request's own binding is
        looked for first: a grant resumed after a crash finds the binding it made and must
        not call it standing access, or its revocation would leave it."""
        request_id, place = context.request_id, self.place
        there = place.find()
        if any(seen.of_request(request_id, self.role, user, self.unit_hash) for seen in there):
            return False
        if any(self._outside_jit_bot(seen, user) for seen in there):
            return True
        for name in self.names(request_id):
            meta = bindings.metadata(name, request_id, email, context.expires_at, self.unit_hash)
            seen = self._create(meta, user)
            if seen is None or seen.of_request(request_id, self.role, user, self.unit_hash):
                return False  # made now, or by a retried call of this request
            if seen.annotations.get(REQUEST) != request_id:
                break
            # The same request binds another unit here under this name: next name.
        raise ProviderError(
            f"{place.label}: a {place.kind} named {name} exists that jit-bot did not make "
            "for this request; remove or rename it"
        )

    def _create(self, meta: client.V1ObjectMeta, user: str) -> Seen | None:
        """Create the binding: None once made, else the one of that name already there.
        One that is gone again by the time the 409 is read back is created once more."""
        name, place = str(meta.name), self.place
        for _ in range(2):
            try:
                place.create(meta, bindings.role_ref(self.role), [bindings.user_subject(user)])
                return None
            except AlreadyExists:
                seen = place.read(name)
            if seen is not None:
                return seen
        raise ProviderError(
            f"{place.label}: {place.kind} {name} exists, then does not: something else "
            "is writing it; try again",
            retryable=True,
        )

    # ------------------------------------------------------------------ revocation

    def unbind(self, request_id: str, requester: str) -> None:
        """Delete this request's bindings made for ``requester`` and confirm they are
        gone. A binding of the request made for someone else whose subject ``requester``
        is (as `holders` names it: drift's clean-up of a subject added by hand) is left
        for a person, loudly: deleting it would end the requester's own grant."""
        place = self.place
        found = self.of_request(request_id)
        for seen in found:
            if seen.requester == requester:
                place.delete(seen)
        self._confirm_gone(request_id, requester)
        strays = [
            seen.name
            for seen in found
            if seen.requester != requester
            and any(self._holder(seen, *subject).lower() == requester for subject in seen.subjects)
        ]
        if strays:
            raise ProviderError(
                f"{place.label}: {place.kind} {', '.join(strays)} of request {request_id} "
                f"binds {requester} but was made for someone else; jit-bot leaves it alone: "
                "remove that subject by hand"
            )

    def _confirm_gone(self, request_id: str, requester: str) -> None:
        """Read this request's bindings back by name: one whose label was taken away (so
        not listed) is deleted now, and one still there (a finalizer keeps it) is a
        failure that is tried again, never a revocation reported done."""
        place = self.place

        def still_there(name: str) -> Seen | None:
            seen = place.read(name)
            if seen is None or seen.requester != requester:
                return None
            return seen if seen.made_for(request_id, self.role, self.unit_hash) else None

        for name in self.names(request_id):
            seen = still_there(name)
            if seen is not None and not seen.deleting:
                place.delete(seen)
                seen = still_there(name)
            if seen is not None:
                raise ProviderError(
                    f"{place.label}: {place.kind} {name} is still there after it was "
                    "deleted (a finalizer keeps it); tried again later",
                    retryable=True,
                )

    # ------------------------------------------------------------------ drift

    def holders(self) -> list[tuple[str, str]]:
        """(email, request id) of every subject of jit-bot's bindings of this unit: under
        the requester's email only where it is the user the requester was bound as, so a
        subject added or swapped in by hand is nobody's grant."""
        found = []
        for seen in self.place.find(SELECTOR):
            request_id = seen.annotations.get(REQUEST, "")
            if seen.for_unit(request_id, self.role, self.unit_hash):
                found += [
                    (self._holder(seen, kind, name), request_id) for kind, name in seen.subjects
                ]
        return found

    def _holder(self, seen: Seen, kind: str, name: str) -> str:
        """Whom a subject of a jit-bot binding stands for, by the email drift compares."""
        if kind != "User":
            return f"{kind}:{name}"  # a group or service account: never a person's grant
        if seen.requester and name == self.kube.user(seen.requester):
            return seen.requester
        return self.kube.email_of(name) or name

    def _outside_jit_bot(self, seen: Seen, user: str) -> bool:
        return seen.gives(self.role, user) and not seen.ours()
