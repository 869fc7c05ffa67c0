"""``jit-bot import gcp``: read the IAM policies of a GCP resource tree, read-only, and
propose functional roles that reproduce them (reading, normalising, environments, the
conversion to the import's own words, the command)."""
