"""Themes and trends as Dagster assets downstream of the import, their check and recompute schedule."""
