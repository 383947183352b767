"""Dagster's SQLite storage with its event-log engines kept, for the project's own instance (`dagster.yaml`).

Dagster's SQLite event log builds a new SQLAlchemy engine and opens a new connection for every event it
stores — twice for an asset event (the run's shard and the cross-run index) — and a 6-month backfill
stores over 500 of them. Measured on the 50,000-item, 184-day import alone, alternated: 16.6–17.3 s with
Dagster's storage, 11.3–11.6 s with the engines kept (the per-day events cost a third of the import).
Everything else is Dagster's own: same files and layout under `$DAGSTER_HOME` (runs, event logs,
schedules), same locking (`_db_lock` serialises this process's writers as before), same transactions and
durability (each event still commits on its own). Only the engine and its connection outlive a call.

`dagster.yaml` names only this event log (`event_log_storage`, no folder): run and schedule storage stay
Dagster's defaults, and the event log takes its folder from the instance it joins (`<instance>/history/runs`,
where Dagster's default keeps it), so any way of loading the instance — `$DAGSTER_HOME`, `from_config(dir)`,
the throwaway instance of `dg dev` — finds its own history.

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

from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import _event_logs_directory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

if TYPE_CHECKING:
    from dagster import DagsterInstance

#: Shards whose engine is kept open (the index, the running run's shard, a few recent ones).
KEPT_SHARDS = 8


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` that keeps one engine, and its open connection, per recent shard.

    Without a `base_dir` it is made when it joins its instance (`register_instance`, the first thing a
    `DagsterInstance` does with its event log), in the instance's own `history/runs`."""

    def __init__(self, base_dir: str | None = None, inst_data: Any = None) -> None:
        self._kept: OrderedDict[str, Engine] = OrderedDict()
        self._kept_pid = os.getpid()
        self._pending_inst_data = inst_data
        self._made = False
        if base_dir is not None:
            self._make(base_dir)

    def _make(self, base_dir: str) -> None:
        super().__init__(base_dir, self._pending_inst_data)
        self._made = True

    @classmethod
    def config_type(cls) -> Any:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> KeptEngineSqliteEventLogStorage:
        return cls(config_value.get("base_dir"), inst_data)

    def register_instance(self, instance: DagsterInstance) -> None:
        if not self._made:
            self._make(_event_logs_directory(instance.root_directory))
        super().register_instance(instance)

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

    def dispose(self) -> None:
        if not self._made:  # never joined an instance: nothing was opened
            return
        super().dispose()
        with self._db_lock:
            while self._kept:
                self._kept.popitem()[1].dispose()
