"""``jit-bot import azure``: read role assignments of Azure subscriptions, read-only, and
propose functional roles that reproduce them (reading, normalising, the matrix, drafts)."""
