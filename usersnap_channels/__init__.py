"""usersnap_channels: Usersnap feedback as Channels data points in DuckDB, orchestrated by Dagster."""

__version__ = "0.1.0"
