"""Importing feedback: which units to fetch, fetching them in parallel, writing them in batches.

Plain Python, no Dagster: the `usersnap_feedback` asset calls `import_units`, and so could anything
else. One unit is one source's project on one UTC day; failures are per unit (or per source, for
rejected credentials), so one bad day or one rotated key never stops the others.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from usersnap_channels.ingest.plan import source_error
from usersnap_channels.ingest.workers import UnitJob, UnitResult, close_clients, fetch_units
from usersnap_channels.processes import exit_with_parent
from usersnap_channels.usersnap.client import ClientSpec, InvalidCredentials, MissingCredentials
from usersnap_channels.warehouse.connection import CHECKPOINT_MEMORY_LIMIT, cap_memory
from usersnap_channels.warehouse.feedback import ArrowBatch, Unit, WriteResult
from usersnap_channels.warehouse.registry import Source, record_sync

log = logging.getLogger(__name__)

ProgressCallback = Callable[["ImportProgress"], None]
_progress_listeners: list[ProgressCallback] = []


def add_progress_listener(listener: ProgressCallback) -> None:
    """Let an in-process caller (the CLI's progress bar) follow an import running inside Dagster."""
    _progress_listeners.append(listener)


def remove_progress_listener(listener: ProgressCallback) -> None:
    if listener in _progress_listeners:
        _progress_listeners.remove(listener)


@dataclass
class ImportProgress:
    units_total: int
    units_done: int = 0
    items: int = 0


@dataclass
class DayCounts:
    """What one UTC day of an import did: its units written, items fetched, data points and rejected items."""

    units: int = 0
    items: int = 0
    data_points: int = 0
    rejected: int = 0


@dataclass
class ImportReport:
    units_planned: int = 0
    units_written: int = 0
    items: int = 0
    data_points: int = 0
    rejected: int = 0
    turns: int = 0
    fields: int = 0
    requests: int = 0
    per_source: dict[str, int] = field(default_factory=dict)
    #: Each day's own counts, so a multi-day run's per-partition metadata is true per day.
    per_day: dict[date, DayCounts] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)
    #: (source_id, message) of every unit that failed for a reason other than the source's credentials.
    unit_errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.source_errors or self.unit_errors)

    def failure_summary(self) -> str:
        lines = list(self.source_errors.values())
        shown = [message for _, message in self.unit_errors[:20]]
        lines += shown
        if len(self.unit_errors) > len(shown):
            lines.append(f"... and {len(self.unit_errors) - len(shown)} more failed days")
        return "\n".join(lines)

    def add_write(self, result: WriteResult) -> None:
        self.units_written += result.units
        self.data_points += result.data_points
        self.rejected += result.rejected
        self.turns += result.turns
        self.fields += result.fields


ConnectionFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
ClientSpecFactory = Callable[[Source], ClientSpec]

#: Below this many units an import fetches in threads: starting worker processes costs about a second.
PROCESS_POOL_MIN_UNITS = 32


def import_units(
    units: list[Unit],
    sources: Iterable[Source],
    *,
    client_spec: ClientSpecFactory,
    connection: ConnectionFactory,
    workers: int = 4,
    flush_items: int = 5000,
    run_id: str | None = None,
    processes: bool | None = None,
) -> ImportReport:
    """Fetch and map every unit in parallel workers, then write them in batches of whole units.

    A unit is written only when all of its pages arrived, so a unit that fails leaves its previous rows
    in place. Workers are processes for large imports (mapping is CPU-bound) and threads for small ones;
    `processes` forces either. At the end each source's `last_synced_at` / `last_error` is recorded.
    """
    by_id = {s.source_id: s for s in sources}
    use_processes = len(units) >= PROCESS_POOL_MIN_UNITS if processes is None else processes
    workers = min(max(1, workers), os.cpu_count() or 1) if use_processes else max(1, workers)
    # every connection the import opens closes under the checkpoint cap
    run = _ImportRun(units, by_id, functools.partial(_import_connection, connection), flush_items)
    plan = _JobPlan(units, {sid: client_spec(s) for sid, s in by_id.items()}, run, workers, run_id)
    pool = _pool(use_processes, workers)
    try:
        for job, outcome in _bounded_map(pool, fetch_units, plan.jobs(), in_flight=workers * 2):
            if isinstance(outcome, BaseException):
                raise outcome  # a bug, not a Usersnap failure: those come back per unit
            run.take(job, outcome)
        run.flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        run.writer.close()
        if not use_processes:
            close_clients()
    return run.finish()


def _pool(use_processes: bool, workers: int) -> Executor:
    """Spawned worker processes (they exit with this process), or threads for small imports."""
    if not use_processes:
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="usersnap")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


class _ImportRun:
    """What an import has gathered so far: the report, the batch being filled, the progress."""

    def __init__(
        self, units: list[Unit], by_id: dict[str, Source], connection: ConnectionFactory, flush_items: int
    ) -> None:
        self.units = units
        self.by_id = by_id
        self.connection = connection
        self.flush_items = flush_items
        self.report = ImportReport(units_planned=len(units))
        self.progress = ImportProgress(units_total=len(units))
        self.failed_sources: dict[str, str] = {}
        self.batch = ArrowBatch()
        self.writer = _Writer(connection, self.report)

    def take(self, job: UnitJob, outcome: UnitResult) -> None:
        """Record a worker's result: failures per unit (or per source), whole units into the batch."""
        for unit, error in outcome.failed:
            self._fail(unit, error)
        items = sum(counts.items for _, counts in outcome.done)
        for unit, counts in outcome.done:
            self.report.per_source[unit.source_id] = self.report.per_source.get(unit.source_id, 0) + counts.items
            day = self.report.per_day.setdefault(unit.day, DayCounts())
            day.units += 1
            day.items += counts.items
            day.data_points += counts.data_points
            day.rejected += counts.rejected
        self.report.items += items
        self.report.requests += outcome.requests
        if outcome.done:
            self.batch.add([unit for unit, _ in outcome.done], outcome.tables, items)
            if self.batch.items >= self.flush_items:
                self.flush()
        self.progress.units_done += len(job.units)
        self.progress.items = self.report.items
        for listener in list(_progress_listeners):
            listener(self.progress)

    def _fail(self, unit: Unit, error: BaseException) -> None:
        source = self.by_id[unit.source_id]
        if isinstance(error, InvalidCredentials | MissingCredentials):
            self.failed_sources.setdefault(unit.source_id, source_error(source, error))
            return
        where = f"{source.label}, project '{unit.project_name}', day {unit.day.isoformat()}"
        self.report.unit_errors.append((unit.source_id, f"{where}: {error}"))

    def flush(self) -> None:
        if self.batch.units:
            self.writer.submit(self.batch)
        self.batch = ArrowBatch()

    def finish(self) -> ImportReport:
        self.progress.units_done = self.progress.units_total  # units skipped after a refused key count as done
        self.report.source_errors = self.failed_sources
        _record_statuses(self.connection, self.report, self.units)
        return self.report


@dataclass
class _JobPlan:
    """Hands units to workers in chunks of one source, skipping a source once its key was refused."""

    units: list[Unit]
    specs: dict[str, ClientSpec]
    run: _ImportRun
    workers: int
    run_id: str | None
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def jobs(self) -> Iterator[UnitJob]:
        """Chunks of consecutive days of one project where the plan allows (a worker fetches such a run
        of days as one span: far fewer requests than a day at a time)."""
        chunk = _chunk_size(len(self.units), self.workers)
        pending: list[Unit] = []
        for unit in sorted(self.units, key=lambda u: (u.source_id, u.project_id, u.day)):
            if unit.source_id in self.run.failed_sources:
                continue
            if pending and (len(pending) >= chunk or pending[0].source_id != unit.source_id):
                yield self._job(pending)
                pending = []
            pending.append(unit)
        if pending:
            yield self._job(pending)

    def _job(self, units: list[Unit]) -> UnitJob:
        return UnitJob(tuple(units), self.specs[units[0].source_id], self.fetched_at, self.run_id)


class _Writer:
    """Writes batches on a thread of its own, so fetching goes on while DuckDB (which releases the GIL)
    commits; at most one batch waits, which bounds memory. A write error stops the import."""

    def __init__(self, connection: ConnectionFactory, report: ImportReport) -> None:
        self._connection = connection
        self._report = report
        self._queue: queue.Queue[ArrowBatch | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="duckdb-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                with self._connection() as con:
                    self._report.add_write(batch.write(con))
            except BaseException as exc:
                self._error = exc

    def submit(self, batch: ArrowBatch) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self) -> None:
        """Wait for every submitted batch; re-raise a write error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


@contextmanager
def _import_connection(connection: ConnectionFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection of the import whose closing checkpoint runs under `CHECKPOINT_MEMORY_LIMIT`."""
    with connection() as con:
        yield con
        cap_memory(con, CHECKPOINT_MEMORY_LIMIT)


def _record_statuses(connection: ConnectionFactory, report: ImportReport, units: list[Unit]) -> None:
    touched = {u.source_id for u in units}
    unit_failures: dict[str, list[str]] = {}
    for source_id, message in report.unit_errors:
        unit_failures.setdefault(source_id, []).append(message)
    with connection() as con:
        for source_id in touched:
            error = report.source_errors.get(source_id)
            if error is None and unit_failures.get(source_id):
                failures = unit_failures[source_id]
                error = f"{len(failures)} day(s) failed; first: {failures[0]}"
            record_sync(con, source_id, error=error)


def _chunk_size(units: int, workers: int) -> int:
    """Units per worker call: big enough to amortise the hand-off, small enough that every worker stays
    busy and progress moves (at least ~8 calls per worker), at most 16."""
    return max(1, min(16, units // (workers * 8)))


def _bounded_map(
    pool: Executor, fn: Callable[[UnitJob], Any], jobs: Iterator[UnitJob], *, in_flight: int
) -> Iterator[tuple[UnitJob, Any]]:
    """Like pool.map, but yields in completion order, keeps at most `in_flight` units fetched and not yet
    written (bounded memory), pulls jobs lazily, and yields an exception instead of raising it."""
    pending: dict[Future[Any], UnitJob] = {}
    while True:
        while len(pending) < in_flight:
            job = next(jobs, None)
            if job is None:
                break
            pending[pool.submit(fn, job)] = job
        if not pending:
            return
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            job = pending.pop(future)
            exc = future.exception()
            yield job, exc if exc is not None else future.result()
