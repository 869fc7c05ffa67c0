"""``jit-bot import aws``: read an IAM Identity Center estate, read-only, and propose
functional roles that reproduce it (reading, normalising, the matrix, the drafts)."""
