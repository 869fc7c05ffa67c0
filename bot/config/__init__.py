"""roles.yaml and approvers.yaml: strict models, loading, and errors that say where.

Every problem is reported as ``file:line: path.inside.file: what is wrong; what was
expected`` so an operator can fix a file without reading code. All problems of both files
are collected and reported together.

- ``models``: the pydantic models of both files and the validated ``JitConfig``;
- ``loading``: reading the YAML, ``load_config``;
- ``checks``: the cross-checks between roles, rules, groups and targets;
- ``messages``: errors worded for operators, and the line each is written on;
- ``issues``: ``ConfigIssue`` and ``ConfigError``.
"""

from bot.config.issues import ConfigError, ConfigIssue, Loc, format_loc
from bot.config.loading import load_config
from bot.config.messages import line_in
from bot.config.models import (
    DOMAIN,
    DURATION_HELP,
    EMAIL,
    ENTRY_HELP,
    GOOGLE_GROUP,
    HANDLE,
    NAME,
    NAME_MAX,
    USER_ID,
    ApproverGroup,
    ApproversFile,
    BreakGlass,
    Duration,
    EmailDomain,
    Entry,
    JitConfig,
    Name,
    Role,
    RolesFile,
    Rule,
    Settings,
)

__all__ = [
    "DOMAIN",
    "DURATION_HELP",
    "EMAIL",
    "ENTRY_HELP",
    "GOOGLE_GROUP",
    "HANDLE",
    "NAME",
    "NAME_MAX",
    "USER_ID",
    "ApproverGroup",
    "ApproversFile",
    "BreakGlass",
    "ConfigError",
    "ConfigIssue",
    "Duration",
    "EmailDomain",
    "Entry",
    "JitConfig",
    "Loc",
    "Name",
    "Role",
    "RolesFile",
    "Rule",
    "Settings",
    "format_loc",
    "line_in",
    "load_config",
]
