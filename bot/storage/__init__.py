"""Persistence: the tables (the source of truth), the engine and schema migrations."""
