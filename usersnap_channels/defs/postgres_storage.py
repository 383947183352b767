"""Postgres event-log storage that keeps its connection open, for the Postgres instance profile.

dagster-postgres opens a new connection (TCP and SCRAM authentication) for every event it stores — its
engine uses no pool, so that an instance holds no connection between runs — and a 6-month backfill stores
hundreds of events, each needing one or two connections (measured: ≈ 8 ms to connect, ≈ 3 ms to insert, on
the 2-core machine under load). This subclass keeps one connection per process open (more only while
threads write at once, as the webserver's pool does: `optimize_for_webserver`), checks it before use and
recycles it hourly. Everything else is dagster-postgres's own; `deploy/postgres/dagster.yaml` names it as
`event_log_storage` (run and schedule storage stay dagster-postgres's). Needs the `postgres` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

#: Connections beyond the kept one while several threads write at once (the daemon's and webserver's do).
MAX_OVERFLOW = 10
POOL_RECYCLE_S = 3600


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """`PostgresEventLogStorage` over a pooled engine (one connection kept open per process)."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: Any = None,
        token_provider: Any = None,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._engine.dispose()
        self._engine = create_pg_engine(
            postgres_url,
            token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=MAX_OVERFLOW,
            pool_recycle=POOL_RECYCLE_S,
            pool_pre_ping=True,
        )

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> PooledPostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()
