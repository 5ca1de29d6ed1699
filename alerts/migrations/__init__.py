"""Alembic migrations for the whole schema (alerts and subscriptions tables)."""
