"""Reading a GCP resource tree's IAM through the gcp provider's clients, read-only.

From the node asked for (an organization, a folder or a project) down: every folder and
project under it (Resource Manager v3 ``folders.list`` / ``projects.list`` by parent, page
by page), the IAM policy of each (``getIamPolicy`` at version 3, so conditional bindings
show as such), the custom roles defined in the projects (and the organization, when it is
the node) and every role bound (IAM ``roles.list`` / ``roles.get``, with their
permissions), and the members of each group bound, through the Admin SDK Directory API
where the credentials may read it. Up from the node, as far as the credentials may read:
its folders and organization, for names and for where the proposed custom roles live.

Calls go through the provider's `GoogleCalls` under its `RETRY` policy (throttling and
5xx are retried); the clients come from `GcpClients`, so the credentials, impersonation
and endpoints are the bot's. Nothing here writes: the calls made are exactly those
providers/gcp-import-role.yaml allows (tests/unit/test_gcp_import_role.py records them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from google.cloud import iam_admin_v1, resourcemanager_v3
from google.iam.v1 import iam_policy_pb2, options_pb2

from bot.errors import DirectoryError, DirectoryUnavailable
from bot.importer.access import CannotImport
from bot.importer.gcp.estate import Binding, Estate, Node, Role
from providers.base import ProviderError
from providers.gcp.auth import GcpClients
from providers.gcp.bindings import POLICY_VERSION
from providers.gcp.calls import GoogleCalls, _NotFound

_GET = {
    "projects": ("get_project", resourcemanager_v3.GetProjectRequest),
    "folders": ("get_folder", resourcemanager_v3.GetFolderRequest),
    "organizations": ("get_organization", resourcemanager_v3.GetOrganizationRequest),
}


class EstateError(CannotImport):
    """The estate cannot be read (no access, no such node); the message says why."""


class Directory(Protocol):
    """Group members, as bot.google_groups.GoogleGroups reads them."""

    def members(self, group: str) -> frozenset[str]: ...


def import_hint(subject: str) -> str:
    """What to say when Google refuses one of the import's calls on ``subject``."""
    if subject.split("/")[0] in _GET and subject.count("/") == 1:
        return (
            "; it may not exist, or the credentials lack the read-only permissions "
            "`jit-bot import gcp` needs there (docs/gcp.md)"
        )
    return "; the credentials need iam.roles.get and iam.roles.list (docs/gcp.md)"


def read_estate(clients: GcpClients, calls: GoogleCalls, directory: Directory, node: str) -> Estate:
    """Everything the import needs, in one pass; EstateError when Google refuses."""
    try:
        return _Reader(clients, calls, directory).read(node)
    except ProviderError as exc:
        raise EstateError(f"cannot read the GCP estate: {exc}") from None
    except DirectoryUnavailable as exc:
        raise EstateError(str(exc)) from None


class _Reader:
    def __init__(self, clients: GcpClients, calls: GoogleCalls, directory: Directory) -> None:
        self._clients = clients
        self._calls = calls
        self._directory = directory

    def read(self, node: str) -> Estate:
        top = self._get(node)
        nodes = {n.name: n for n in self._tree(top)}
        ancestors = self._ancestors(top)
        chain = [top.name, *(n.parent for n in (top, *ancestors.values()) if n.parent)]
        organization = next((n for n in chain if n.startswith("organizations/")), None)
        bindings = tuple(b for name in nodes for b in self._policy(name))
        roles = self._custom_roles(nodes)
        missing = []
        for name in sorted({b.role for b in bindings} - set(roles)):
            role = self._role(name)
            if role is None:
                missing.append(name)
            else:
                roles[name] = role
        bound = {b.member for b in bindings if not b.condition}
        groups = sorted({m.removeprefix("group:").lower() for m in bound if m.startswith("group:")})
        members, refusal = self._groups(groups)
        return Estate(
            top.name,
            organization,
            nodes,
            ancestors,
            bindings,
            roles,
            members,
            refusal,
            tuple(missing),
        )

    # ------------------------------------------------------------------ Resource Manager

    def _get(self, name: str) -> Node:
        kind = name.split("/")[0]
        client = self._clients.policies(name)
        method, request = _GET[kind]
        found = self._calls.call(name, "get", getattr(client, method), request(name=name))
        return _node(kind, found)

    def _tree(self, top: Node) -> Iterator[Node]:
        """The node, then every folder and project under it."""
        stack = [top]
        while stack:
            node = stack.pop()
            yield node
            if node.kind == "projects":
                continue
            stack += self._children("folders", node.name)
            stack += self._children("projects", node.name)

    def _children(self, kind: str, parent: str) -> list[Node]:
        client = self._clients.policies(kind)
        if kind == "folders":
            method, request, field = (
                client.list_folders,
                resourcemanager_v3.ListFoldersRequest,
                kind,
            )
        else:
            method, request, field = (
                client.list_projects,
                resourcemanager_v3.ListProjectsRequest,
                kind,
            )
        return [
            _node(kind, found)
            for page in self._pages(parent, f"list {kind}", method, request, parent=parent)
            for found in getattr(page, field)
        ]

    def _ancestors(self, top: Node) -> dict[str, Node]:
        """The folders and organization above ``top``, as far as the credentials may read
        them (reading above the node is not needed for the import, only useful)."""
        found: dict[str, Node] = {}
        parent = top.parent
        while parent and parent not in found:
            try:
                node = self._get(parent)
            except ProviderError:
                break
            found[node.name] = node
            parent = node.parent
        return found

    def _policy(self, name: str) -> Iterator[Binding]:
        client = self._clients.policies(name)
        request = iam_policy_pb2.GetIamPolicyRequest(
            resource=name,
            # Below version 3 Google hides conditions and renames their roles.
            options=options_pb2.GetPolicyOptions(requested_policy_version=POLICY_VERSION),
        )
        policy = self._calls.call(name, "getIamPolicy", client.get_iam_policy, request)
        for binding in policy.bindings:
            condition = ""
            if binding.HasField("condition"):
                condition = binding.condition.title or binding.condition.expression or "?"
            for member in binding.members:
                yield Binding(name, binding.role, member, condition)

    # ------------------------------------------------------------------ IAM

    def _custom_roles(self, nodes: dict[str, Node]) -> dict[str, Role]:
        """The custom roles defined where a project (or the organization, when it is the
        node) keeps them, bound or not."""
        iam = self._clients.iam()
        roles: dict[str, Role] = {}
        for name, node in nodes.items():
            if node.kind == "folders":
                continue  # folders cannot define roles
            pages = self._pages(
                name,
                "ListRoles",
                iam.list_roles,
                iam_admin_v1.ListRolesRequest,
                parent=name,
                view=iam_admin_v1.RoleView.FULL,
            )
            roles.update((r.name, _role(r)) for page in pages for r in page.roles)
        return roles

    def _role(self, name: str) -> Role | None:
        """A bound role by name; None when IAM knows no such role."""
        request = iam_admin_v1.GetRoleRequest(name=name)
        try:
            found = self._calls.call(name, "GetRole", self._clients.iam().get_role, request)
        except _NotFound:
            return None
        return _role(found)

    def _pages(
        self, subject: str, operation: str, method: Any, request: Any, **fields: Any
    ) -> Iterator[Any]:
        """Each page of a list, each call retried on its own."""
        token = ""
        while True:
            page = self._calls.call(subject, operation, method, request(**fields, page_token=token))
            yield page
            token = page.next_page_token
            if not token:
                return

    # ------------------------------------------------------------------ Directory

    def _groups(self, groups: Sequence[str]) -> tuple[dict[str, tuple[str, ...]], str]:
        """Group → its users' emails; and why none could be read, if the directory
        refuses (then it is not asked again)."""
        found: dict[str, tuple[str, ...]] = {}
        for group in groups:
            try:
                found[group] = tuple(sorted(self._directory.members(group)))
            except DirectoryUnavailable:
                raise
            except DirectoryError as exc:
                return {}, str(exc)
        return found, ""


def _node(kind: str, found: Any) -> Node:
    if kind == "projects":
        project = str(found.project_id)
        return Node(
            f"projects/{project}",
            str(found.display_name or project),
            str(found.parent) or None,
            dict(found.labels),
        )
    parent = str(getattr(found, "parent", "")) or None
    return Node(str(found.name), str(found.display_name or found.name), parent)


def _role(found: iam_admin_v1.Role) -> Role:
    """A disabled custom role grants nothing, as a deleted one: both are left out, or
    its holders would be given the active copies it has the permissions of."""
    disabled = found.stage == iam_admin_v1.Role.RoleLaunchStage.DISABLED
    return Role(
        str(found.name),
        str(found.title),
        tuple(sorted(found.included_permissions)),
        bool(found.deleted) or disabled,
    )
