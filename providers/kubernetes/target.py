"""What a ``kubernetes`` entry of roles.yaml may say: which cluster (a kubeconfig context,
or an EKS cluster found through AWS), which ClusterRole, where (namespaces, or the whole
cluster), and how the cluster names the person."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from providers.base import TargetSpec

#: ClusterRoles that give everything, refused unless ``allow_cluster_admin: true``.
CLUSTER_ADMIN = "cluster-admin"
# A namespace name: a DNS-1123 label.
_NAMESPACE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# An RBAC object name may hold colons (system:aggregate-to-edit) but is one path segment.
_ROLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,252}$"
# The username the cluster authenticates a person as: ``{email}`` or ``{local}`` with
# plain characters around it (an OIDC prefix such as ``oidc:`` is common).
_USER_TEMPLATE = r"^[A-Za-z0-9_.@+:#/=-]*\{(email|local)\}[A-Za-z0-9_.@+:#/=-]*$"
_EKS_NAME = r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"
_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubeconfigCluster(_Strict):
    """A cluster reached as a kubeconfig context says (its server, CA and the bot's own
    credentials: a token, a client certificate or an exec plugin)."""

    kubeconfig: Annotated[str, Field(min_length=1, max_length=1024)]
    context: Annotated[str, Field(min_length=1, max_length=253)]

    def label(self) -> str:
        return self.context


class EksCluster(_Strict):
    """An EKS cluster: endpoint and CA from ``eks:DescribeCluster``, the bot's bearer
    token presigned from STS with the aws provider's credentials."""

    eks: Annotated[str, Field(pattern=_EKS_NAME)]
    region: Annotated[str, Field(pattern=_REGION)]

    def label(self) -> str:
        return f"EKS {self.eks} ({self.region})"


Cluster = KubeconfigCluster | EksCluster


class KubernetesTarget(TargetSpec):
    """``provider: kubernetes``: ``cluster_role`` bound to the person, by a RoleBinding
    in each of ``namespaces``, or by a ClusterRoleBinding with ``cluster_wide: true``."""

    provider: Literal["kubernetes"] = "kubernetes"
    cluster: Cluster
    cluster_role: Annotated[str, Field(pattern=_ROLE_NAME)]
    namespaces: list[Annotated[str, Field(pattern=_NAMESPACE, max_length=63)]] = Field(
        default_factory=list
    )
    cluster_wide: bool = False
    user_template: Annotated[str, Field(pattern=_USER_TEMPLATE, max_length=253)] = "{email}"
    #: Whether a ClusterRole that gives everything (cluster-admin, or one that may bind or
    #: escalate any role) may be granted at all.
    allow_cluster_admin: bool = False

    @field_validator("namespaces")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names a namespace twice")
        return value

    @model_validator(mode="after")
    def _somewhere(self) -> KubernetesTarget:
        if bool(self.namespaces) == self.cluster_wide:
            raise ValueError(
                "expected either 'namespaces' (a list) or 'cluster_wide: true', not both"
                if self.cluster_wide
                else "expected 'namespaces' (a list) or 'cluster_wide: true'"
            )
        return self

    def identity_problem(self, email_domains: Sequence[str]) -> str | None:
        if "{local}" in self.user_template and len(email_domains) > 1:
            return (
                f"user_template {self.user_template!r} keeps only the part of the email "
                f"before the @, but allowed_email_domains has {len(email_domains)} domains: "
                "a@one and a@other would be one Kubernetes user; expected '{email}' in the "
                "template"
            )
        return None

    def user(self, email: str) -> str:
        """The username the cluster knows the person by (Slack's email, lower case, as
        the bot keeps every email; Kubernetes usernames are case-sensitive, so the
        cluster's authenticator must name people in lower case too: docs/kubernetes.md)."""
        address = email.strip().lower()
        local = address.split("@", 1)[0]
        return self.user_template.replace("{email}", address).replace("{local}", local)

    def email_of(self, user: str) -> str | None:
        """The email a username was made from, where the template keeps all of it."""
        if "{email}" not in self.user_template:
            return None
        prefix, suffix = self.user_template.split("{email}")
        found = re.fullmatch(re.escape(prefix) + "(.+@.+)" + re.escape(suffix), user)
        return found.group(1) if found else None


def as_kubernetes(target: TargetSpec) -> KubernetesTarget:
    if not isinstance(target, KubernetesTarget):
        raise TypeError(f"the kubernetes provider cannot handle {target.provider} targets")
    return target
