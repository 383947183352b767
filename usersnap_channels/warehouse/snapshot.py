"""The analysts' snapshot: a copy of the channels file that notebooks and BI tools keep open.

DuckDB lets one process write a file, and a reader of the file itself (even read-only) keeps every writer
out: an analyst's open session would stall the next sync. The snapshot (`channels.snapshot.duckdb` beside
`channels.duckdb`) is refreshed at the end of every run that writes, by copying the checkpointed file to a
temporary file in the same folder and renaming it over the snapshot (`os.replace`, atomic): a reader sees
the old copy or the new one, never half of one, and a reader holding the old one open keeps it (on POSIX the
renamed-over file lives on until its last reader closes it) without blocking the refresh.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

#: `channels.duckdb` -> `channels.snapshot.duckdb`.
SNAPSHOT_SUFFIX = ".snapshot.duckdb"


def snapshot_path(database: str | os.PathLike[str]) -> Path:
    """The snapshot of a DuckDB file: in its folder, `<name without .duckdb>.snapshot.duckdb`."""
    path = Path(database)
    return path.with_name(path.name.removesuffix(".duckdb") + SNAPSHOT_SUFFIX)


@dataclass(frozen=True)
class SnapshotResult:
    path: Path
    bytes: int
    seconds: float


def refresh_snapshot(con: duckdb.DuckDBPyConnection, database: str | os.PathLike[str]) -> SnapshotResult:
    """Replace the snapshot of `database` with a copy of it as committed now.

    `con` is a read-write connection to `database`: holding it keeps every other process from writing while
    the file is copied, and its CHECKPOINT first moves the write-ahead log into the file, so the file alone is
    the whole database. A byte copy is ~15x faster than DuckDB's `COPY FROM DATABASE` (which re-encodes every
    table: 0.07 s against 1.1 s for the 64 MB file of the 50,000-item benchmark) and gives the same rows.
    The copy is written to a temporary name, flushed to disk, then renamed over the snapshot; any failure
    removes the temporary file and leaves the previous snapshot in place.
    """
    started = time.monotonic()
    source = Path(database)
    target = snapshot_path(source)
    con.execute("CHECKPOINT")
    wal = source.with_name(source.name + ".wal")
    if wal.exists() and wal.stat().st_size:
        # a transaction of another connection of this process committed after the checkpoint: the file
        # alone is not the database now, and a copy of it would miss those rows
        raise RuntimeError(f"{source} still has a write-ahead log after CHECKPOINT; snapshot not refreshed")
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):  # of a run killed mid-copy
        leftover.unlink(missing_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        # a write-ahead log left by someone who opened the snapshot read-write belongs to the old copy:
        # DuckDB would replay it onto the new one
        target.with_name(target.name + ".wal").unlink(missing_ok=True)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return SnapshotResult(target, target.stat().st_size, time.monotonic() - started)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a crash right after it cannot bring the old snapshot back)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles: the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
