"""Dagster resources: the Usersnap client factory and the DuckDB connection.

Secrets never enter Dagster config: a source names the environment variables holding its key, and
the resource reads their values from the environment at run time, when a client is built.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from usersnap_channels import settings
from usersnap_channels.usersnap.client import (
    ClientSpec,
    MissingCredentials,
    RetryPolicy,
    UsersnapClient,
    read_credentials,
)

__all__ = ["MissingCredentials", "UsersnapResource", "channels_duckdb", "read_credentials"]


class UsersnapResource(dg.ConfigurableResource):
    """Builds Usersnap clients. Holds only the API root and the *names* of the credential variables."""

    base_url: str | None = Field(
        default=None, description="Usersnap API root; unset means $USERSNAP_BASE_URL, else the public API."
    )
    jwt_id_env: str = Field(default=settings.DEFAULT_JWT_ID_ENV, description="Variable holding the JWT ID.")
    jwt_secret_env: str = Field(
        default=settings.DEFAULT_JWT_SECRET_ENV, description="Variable holding the JWT Secret (never its value)."
    )
    connect_timeout_s: float = Field(default=10.0, description="Seconds to wait for a TCP connection.")
    read_timeout_s: float = Field(default=60.0, description="Seconds to wait for a response.")
    max_transient_retries: int = Field(default=6, description="Tries per request on 5xx, drops and bad bodies.")
    backoff_base_s: float = Field(default=0.5, description="First backoff; doubles per try, with jitter.")

    def resolved_base_url(self) -> str:
        return self.base_url or settings.base_url()

    def client_spec(self, jwt_id_env: str | None = None, jwt_secret_env: str | None = None) -> ClientSpec:
        """How to build a client for the key in the named variables (the resource's defaults when not given)."""
        return ClientSpec(
            base_url=self.resolved_base_url(),
            jwt_id_env=jwt_id_env or self.jwt_id_env,
            jwt_secret_env=jwt_secret_env or self.jwt_secret_env,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            retry=RetryPolicy(max_transient=self.max_transient_retries, backoff_base_s=self.backoff_base_s),
        )

    def client(self, jwt_id_env: str | None = None, jwt_secret_env: str | None = None) -> UsersnapClient:
        """A client for the key in the named variables (the resource's defaults when not given)."""
        return self.client_spec(jwt_id_env, jwt_secret_env).build()


def channels_duckdb(database: str | None = None) -> DuckDBResource:
    """The channels DuckDB file ($USERSNAP_CHANNELS_DB, default data/channels.duckdb)."""
    config = settings.load()
    path = database or str(config.db)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # DuckDB sizes its buffer pool to 80 % of RAM by default and keeps what it touched while writing; our
    # writes are small batches of whole units, so a tight cap costs nothing and keeps a big import's peak
    # memory ~100 MB lower (it spills to disk if a query ever needs more).
    return DuckDBResource(database=path, connection_config={"memory_limit": config.duckdb_memory_limit})
