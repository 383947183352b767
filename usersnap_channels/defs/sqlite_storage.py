"""Dagster's SQLite storage with its event-log engines kept, for the project's own instance (`dagster.yaml`).

Dagster's SQLite event log builds a new SQLAlchemy engine and opens a new connection for every event it
stores — twice for an asset event (the run's shard and the cross-run index) — and a 6-month backfill
stores over 500 of them. Measured on the 50,000-item, 184-day import alone, alternated: 16.6–17.3 s with
Dagster's storage, 11.3–11.6 s with the engines kept (the per-day events cost a third of the import).
Everything else is Dagster's own: same files and layout under `$DAGSTER_HOME` (runs, event logs,
schedules), same locking (`_db_lock` serialises this process's writers as before), same transactions and
durability (each event still commits on its own). Only the engine and its connection outlive a call.

`dagster.yaml` names the folder by `env: DAGSTER_HOME` (Dagster's default storage has no setting for "the
instance's own folder"); loading the instance from another folder while DAGSTER_HOME names a different one
is refused with a clear error rather than mixing two instances' histories.

The engines of at most `KEPT_SHARDS` shards are kept (the index and the most recent runs): a daemon or
webserver that reads many runs' logs does not keep a file open per run. A process forked from one that
holds engines starts with none (SQLite connections must not cross a fork).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

if TYPE_CHECKING:
    from dagster import DagsterInstance

#: Shards whose engine is kept open (the index, the running run's shard, a few recent ones).
KEPT_SHARDS = 8


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` that keeps one engine, and its open connection, per recent shard."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._kept: OrderedDict[str, Engine] = OrderedDict()
        self._kept_pid = os.getpid()
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # ty: ignore[invalid-method-override]
        with self._db_lock:
            engine = self._engine_for(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine_for(self, shard: str) -> Engine:
        """The kept engine of `shard` (made, and its database initialised, on first use). Call with the lock."""
        if self._kept_pid != os.getpid():  # forked: the parent's connections are not ours to use or close
            self._kept, self._kept_pid = OrderedDict(), os.getpid()
        engine = self._kept.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._kept[shard] = engine
            while len(self._kept) > KEPT_SHARDS:
                self._kept.popitem(last=False)[1].dispose()
        self._kept.move_to_end(shard)
        return engine

    def register_instance(self, instance: DagsterInstance) -> None:
        """Refuse an instance whose folder is not this storage's: `base_dir` comes from `$DAGSTER_HOME`, so
        `DagsterInstance.from_config(other_folder)` with another DAGSTER_HOME set would otherwise read and
        write the other instance's history without a word."""
        expected = os.path.realpath(_event_logs_directory(instance.root_directory))
        if os.path.realpath(self._base_dir) != expected:
            raise DagsterInvariantViolationError(
                f"The Dagster instance at {instance.root_directory} names its storage by DAGSTER_HOME, which is "
                f"{os.environ.get('DAGSTER_HOME')!r}: set DAGSTER_HOME to the instance's folder before loading it."
            )
        super().register_instance(instance)

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            while self._kept:
                self._kept.popitem()[1].dispose()


class KeptEngineSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (`base_dir` as Dagster's: `$DAGSTER_HOME`) with the kept-engine
    event log; runs and schedules are Dagster's own."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        super().__init__(base_dir, inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = KeptEngineSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> KeptEngineSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
