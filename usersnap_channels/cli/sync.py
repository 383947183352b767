"""`sync` as Dagster runs on the project's instance, so every sync shows in the Dagster UI.

A sync is one in-process run of `usersnap_sync_job`: a refresh of `usersnap_projects`, then one
single-run import of the whole missing range of days (the days already imported are skipped, today
and yesterday re-fetched), then the asset check over the imported days.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path

import dagster as dg

from usersnap_channels import settings
from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.compat import execute_as_launched, free_pool_slots, remote_job_origin
from usersnap_channels.defs.instance_env import apply_run_env
from usersnap_channels.defs.jobs import (
    TRIGGER_TAG,
    import_config,
    range_tags,
    themes_job,
    themes_run_config,
    usersnap_sync_job,
)
from usersnap_channels.defs.provenance import scope_tags
from usersnap_channels.ingest.importer import ImportProgress, add_progress_listener, remove_progress_listener
from usersnap_channels.ingest.plan import plan_units
from usersnap_channels.partitions import PARTITIONS_START, utc_today
from usersnap_channels.warehouse.connection import open_database
from usersnap_channels.warehouse.feedback import synced_units
from usersnap_channels.warehouse.registry import Source

#: Dagster's console logger stays quiet: the CLI prints its own progress, summary and each source's error;
#: the full story (stack traces included) is in the run's event log in the Dagster UI.
QUIET_LOGGERS = {"console": {"config": {"log_level": "CRITICAL"}}}
#: On every run a `sync` executes in its own process, so a later `sync` can tell that process is gone.
PID_TAG = "usersnap_channels/pid"
HOST_TAG = "usersnap_channels/host"


@dataclass
class SyncOutcome:
    success: bool
    units: int = 0
    items: int = 0
    seconds: float = 0.0
    run_ids: list[str] = field(default_factory=list)


def missing_range(sources: list[Source], database: str, *, wait_s: float) -> tuple[date, date, int] | None:
    """(first day, last day, units) that a sync must import, or None."""
    today = utc_today()
    # another process (a sensor-triggered run, a second `sync`) may be writing: wait for its lock
    con = open_database(database, read_only=True, wait_s=wait_s)
    try:
        synced = synced_units(con, [s.source_id for s in sources])
    finally:
        con.close()
    earliest = max(min(s.window_start for s in sources), PARTITIONS_START)
    units = plan_units(sources, earliest, today, today=today, already_synced=synced)
    if not units:
        return None
    return min(u.day for u in units), today, len(units)


def run_sync(
    sources: list[Source],
    *,
    instance_home: Path,
    show_progress: bool = False,
    definitions: dg.Definitions | None = None,
    database: str | None = None,
    workers: int = 4,
    lock_wait_s: float = 120.0,
) -> SyncOutcome:
    """One Dagster run: refresh the projects, import every missing day of the given connected sources, and
    check the imported days against Usersnap's counts."""
    started = time.monotonic()
    os.environ["DAGSTER_HOME"] = str(instance_home)
    apply_run_env()  # event batching, one planned event per range (defs/instance_env.py)
    database = database or str(settings.db_path())
    defs = definitions or build_definitions(database=database)
    outcome = SyncOutcome(success=True)
    planned = missing_range(sources, database, wait_s=lock_wait_s)
    if planned is None:
        outcome.seconds = time.monotonic() - started
        return outcome
    first, last, _ = planned
    source_ids = [s.source_id for s in sources]
    process_tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    with dg.DagsterInstance.get() as instance:
        release_dead_sync_runs(instance)
        progress_bar = _ProgressBar() if show_progress else None
        tracker = _Tracker(progress_bar)
        add_progress_listener(tracker)
        try:
            result = execute_as_launched(
                defs.resolve_job_def(usersnap_sync_job.name),
                instance=instance,
                run_config=import_config(source_ids, only_missing=True, workers=workers, loggers=QUIET_LOGGERS),
                tags={
                    **range_tags(first, last),
                    TRIGGER_TAG: "cli-sync",
                    **process_tags,
                    **scope_tags(database, sources),
                },
                origin=remote_job_origin(usersnap_sync_job.name, workspace_file()),
            )
        finally:
            remove_progress_listener(tracker)
            if progress_bar is not None:
                progress_bar.close()
        outcome.run_ids.append(result.run_id)
        outcome.success = result.success
    outcome.units = tracker.last.units_done if tracker.last else 0
    outcome.items = tracker.last.items if tracker.last else 0
    outcome.seconds = time.monotonic() - started
    return outcome


def workspace_file() -> Path | None:
    """The project's workspace.yaml (searching up from the working directory), whose code location a sync's
    runs are recorded under, as if launched from the UI; None outside the project."""
    return next(
        (p / "workspace.yaml" for p in (Path.cwd(), *Path.cwd().parents) if (p / "workspace.yaml").exists()), None
    )


def release_dead_sync_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the runs of `sync` processes on this host that no longer exist, and free their pool slots.

    An in-process run holds its `duckdb` pool slot until it ends. A `sync` killed with SIGKILL (or by a
    power cut) never ends its run, and every later run would wait for that slot forever: the daemon's
    run monitoring only looks after launched runs. Returns the ids of the runs released.
    """
    host = socket.gethostname()
    active = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    released = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=active, tags={HOST_TAG: host})):
        run, pid = record.dagster_run, record.dagster_run.tags.get(PID_TAG, "")
        created = record.create_timestamp
        created = created if created.tzinfo else created.replace(tzinfo=UTC)  # Dagster's are UTC
        if not pid.isdigit() or _process_alive(int(pid), started_by=created.timestamp()):
            continue
        instance.report_run_failed(
            run, message=f"The `usersnap-channels sync` process (pid {pid}) running this run is gone (killed?)."
        )
        free_pool_slots(instance, run.run_id)
        released.append(run.run_id)
    return released


def _process_alive(pid: int, *, started_by: float) -> bool:
    """Whether the process that created a run at `started_by` (epoch seconds) still runs. A zombie (killed,
    not yet reaped) does not; on Linux, a process with the same id started later (after a reboot, or the id
    was reused) is another process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as boot:
            booted = next(float(line.split()[1]) for line in boot if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return True
    process_started = booted + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return fields[0] != "Z" and process_started <= started_by + 1


class _ProgressBar:
    """A rich progress bar fed by the import's progress events (same process)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("Syncing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("days·projects"),
            TextColumn("{task.fields[items]} items"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task("sync", total=None, items=0)
        self._progress.start()

    def update(self, progress: ImportProgress) -> None:
        self._progress.update(
            self._task, total=progress.units_total, completed=progress.units_done, items=progress.items
        )

    def close(self) -> None:
        self._progress.stop()


class _Tracker:
    def __init__(self, bar: _ProgressBar | None) -> None:
        self.bar = bar
        self.last: ImportProgress | None = None

    def __call__(self, progress: ImportProgress) -> None:
        self.last = progress
        if self.bar is not None:
            self.bar.update(progress)


def run_themes(*, instance_home: Path, channel: str | None, show_progress: bool, database: str | None = None) -> str:
    """One in-process run of `themes_job` with a full recompute (ids kept); returns its run id, raises
    `ThemesFailed` with the run's error when it fails."""
    # here, not at the top: the themes service loads the clustering (scipy), which `sync` alone never needs
    from usersnap_channels.themes.service import add_progress_listener as add_themes_listener
    from usersnap_channels.themes.service import remove_progress_listener as remove_themes_listener

    os.environ["DAGSTER_HOME"] = str(instance_home)
    database = database or str(settings.db_path())
    defs = build_definitions(database=database)
    status = _ThemesStatus() if show_progress else None
    if status is not None:
        add_themes_listener(status)
    try:
        with dg.DagsterInstance.get() as instance:
            result = execute_as_launched(
                defs.resolve_job_def(themes_job.name),
                instance=instance,
                run_config=themes_run_config(recompute=True, reason="manual", channel=channel, loggers=QUIET_LOGGERS),
                tags={
                    TRIGGER_TAG: "cli-themes",
                    PID_TAG: str(os.getpid()),
                    HOST_TAG: socket.gethostname(),
                    **scope_tags(database),
                },
                origin=remote_job_origin(themes_job.name, workspace_file()),
            )
    finally:
        if status is not None:
            remove_themes_listener(status)
            status.close()
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_step_failure and e.message]
        raise ThemesFailed(f"The themes run {result.run_id} failed: {failures[0] if failures else 'see the UI'}")
    return result.run_id


class ThemesFailed(Exception):
    """A themes run did not succeed (the message names the run)."""


class _ThemesStatus:
    """A rich progress display with the phase the themes run is in (same process)."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        self._task = self._progress.add_task("Themes: starting", total=None)
        self._progress.start()

    def __call__(self, message: str) -> None:
        self._progress.update(self._task, description=f"Themes: {message}")

    def close(self) -> None:
        self._progress.stop()
