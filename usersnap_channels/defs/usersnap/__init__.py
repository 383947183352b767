"""The Usersnap import as Dagster assets, its asset check, the sync sensor and the schedule."""
