"""Alembic migrations of the state store (see store.StateStore.migrate)."""
