"""The cloud sources of ``jit-bot import``: ``aws`` (IAM Identity Center), ``gcp`` (the
IAM policies of a resource tree) and ``azure`` (role assignments of subscriptions), all
read-only, each a parser and a runner handing its reader's estate to the shared core.
Their readers and SDKs are imported when the command runs, so ``jit-bot serve`` never
loads them.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.cli.import_options import add_estate_options, options, progress_bar

if TYPE_CHECKING:
    Sources = argparse._SubParsersAction[argparse.ArgumentParser]


def add_aws(sources: Sources) -> None:
    aws = sources.add_parser(
        "aws",
        help="from IAM Identity Center, read-only: drafts roles.yaml, approvers.yaml, "
        "mapping.csv and report.md",
    )
    aws.add_argument(
        "--environments",
        default="ou",
        metavar="ou|tag:KEY|FILE",
        help="each account's environment: the name of its OU (default), the value of its "
        "tag KEY, or a file of '<account id> <environment>' lines",
    )
    add_estate_options(aws)
    aws.set_defaults(run=_run_aws)


def _run_aws(args: argparse.Namespace) -> int:
    from bot.importer.aws.command import import_aws

    with progress_bar() as progress:
        return import_aws(args.output, args.environments, os.environ, options(args), progress)


def add_gcp(sources: Sources) -> None:
    gcp = sources.add_parser(
        "gcp",
        help="from the IAM policies of a GCP organization, folder or project, read-only: "
        "drafts roles.yaml, approvers.yaml, mapping.csv and report.md",
    )
    node = gcp.add_mutually_exclusive_group(required=True)
    node.add_argument("--organization", type=_numeric("organizations"), metavar="ID", dest="node")
    node.add_argument("--folder", type=_numeric("folders"), metavar="ID", dest="node")
    node.add_argument("--project", type=_project, metavar="ID", dest="node")
    gcp.add_argument(
        "--environments",
        default="folder",
        metavar="folder|label:KEY|FILE",
        help="each project's environment: the name of the folder it sits in (default), the "
        "value of its label KEY, or a file of '<resource> <environment>' lines "
        "(projects/ID, folders/N, organizations/N)",
    )
    add_estate_options(gcp)
    gcp.set_defaults(run=_run_gcp)


def _run_gcp(args: argparse.Namespace) -> int:
    from bot.importer.gcp.command import import_gcp

    with progress_bar() as progress:
        return import_gcp(
            args.node, args.output, args.environments, os.environ, options(args), progress
        )


def _numeric(kind: str) -> Callable[[str], str]:
    """``123`` or ``{kind}/123`` → ``{kind}/123``."""
    noun = "an organization" if kind == "organizations" else "a folder"

    def parse(value: str) -> str:
        number = value.removeprefix(f"{kind}/")
        if not number.isascii() or not number.isdigit() or len(number) > 20:
            raise argparse.ArgumentTypeError(f"'{value}' is not {noun} id; expected its number")
        return f"{kind}/{number}"

    return parse


def _project(value: str) -> str:
    """``acme-prod`` or ``projects/acme-prod`` → ``projects/acme-prod``."""
    project = value.removeprefix("projects/")
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", project):
        raise argparse.ArgumentTypeError(
            f"'{value}' is not a project id; expected 6–30 lower-case letters, digits and "
            "hyphens, starting with a letter"
        )
    return f"projects/{project}"


def add_azure(sources: Sources) -> None:
    azure = sources.add_parser(
        "azure",
        help="from Azure role assignments, read-only: drafts roles.yaml, approvers.yaml, "
        "mapping.csv and report.md",
    )
    azure.add_argument(
        "--subscription",
        type=_subscription,
        action="append",
        required=True,
        metavar="ID",
        help="a subscription to read (its resource groups and resources included); repeat for more",
    )
    azure.add_argument(
        "--environments",
        default="name",
        metavar="name|tag:KEY|FILE",
        help="each scope's environment: its subscription's name (default), the value of the "
        "tag KEY (a resource group's own, else its subscription's), or a file of "
        "'<scope> <environment>' lines",
    )
    add_estate_options(azure)
    azure.set_defaults(run=_run_azure)


def _run_azure(args: argparse.Namespace) -> int:
    from bot.importer.azure.command import import_azure

    with progress_bar() as progress:
        return import_azure(
            args.output,
            args.subscription,
            args.environments,
            os.environ,
            options(args),
            progress,
        )


def _subscription(value: str) -> str:
    """A subscription id: a GUID, as the Azure portal shows it."""
    from bot.importer.azure.scopes import GUID

    if not GUID.match(value):
        raise argparse.ArgumentTypeError(
            f"'{value}' is not a subscription id; expected a GUID such as "
            "00000000-0000-0000-0000-000000000000"
        )
    return value.lower()
