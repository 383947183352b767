"""Constants and environment defaults shared by the client, the assets and the CLI."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BASE_URL = "https://platform.usersnap.com/v0.1"
DEFAULT_DB_PATH = "data/channels.duckdb"
DEFAULT_JWT_ID_ENV = "USERSNAP_JWT_ID"
DEFAULT_JWT_SECRET_ENV = "USERSNAP_JWT_SECRET"

#: Items per page when listing feedback; the product contract fixes it at 50.
PAGE_SIZE = 50
#: Lifetime of each minted JWT. Usersnap accepts up to 5 minutes; shorter is safer.
TOKEN_LIFETIME_S = 60


def base_url() -> str:
    """The Usersnap API root, from `USERSNAP_BASE_URL`."""
    return os.environ.get("USERSNAP_BASE_URL") or DEFAULT_BASE_URL


def db_path() -> Path:
    """The DuckDB file, from `USERSNAP_CHANNELS_DB` (relative paths are relative to the working dir)."""
    return Path(os.environ.get("USERSNAP_CHANNELS_DB") or DEFAULT_DB_PATH)


def duckdb_memory_limit() -> str:
    """DuckDB memory limit of the pipeline's own connections, from `USERSNAP_CHANNELS_DUCKDB_MEMORY_LIMIT`."""
    return os.environ.get("USERSNAP_CHANNELS_DUCKDB_MEMORY_LIMIT") or "64MB"
