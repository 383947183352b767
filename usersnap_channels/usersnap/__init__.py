"""Talking to Usersnap and mapping its items: knows nothing of Dagster or DuckDB."""
