"""Cloud providers: each module grants and revokes one kind of target, nothing else.

A provider imports its cloud's SDK (or database driver) inside the function that uses it,
never at the top of a module, and names SDK types in annotations under
``if TYPE_CHECKING:``: every start builds every provider and validates roles.yaml, and
none of that may pay for an SDK the bot has not used yet (docs/development.md, "Cloud SDKs
are imported where they are used"; tests/unit/test_start_imports.py).
"""
