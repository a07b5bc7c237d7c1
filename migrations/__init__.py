"""Alembic revisions: the only way tables, row-level security policies and triggers are created."""
