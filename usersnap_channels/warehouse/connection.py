"""Opening the channels DuckDB file: the one place that creates the schema and waits out another writer."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from usersnap_channels.warehouse.schema import SCHEMA_SQL


class DatabaseBusy(Exception):
    """Another process (a running import, the DuckDB CLI) holds the DuckDB file's lock."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"the DuckDB file {path} is in use by another program{holder}")


def lock_holder(exc: BaseException) -> str | None:
    """For DuckDB's lock conflict ("Could not set lock on file …: Conflicting lock is held in PROGRAM (PID n)"),
    the holder as " (PROGRAM, PID n)" or ""; None for any other error (even one whose path says "lock")."""
    text = str(exc)
    if "Could not set lock on file" not in text and "Conflicting lock" not in text:
        return None
    holder = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", text)
    return f" ({holder.group(1)}, PID {holder.group(2)})" if holder else ""


def _busy_holder(exc: BaseException) -> str | None:
    """The lock holder when `exc` means "someone else has the file now", else None.

    Besides another process's lock, DuckDB refuses a second connection in the same process that asks for
    another configuration (read-only next to read-write, another memory limit): also a wait-and-retry."""
    holder = lock_holder(exc)
    if holder is None and "different configuration" in str(exc).lower():
        return " (this process, with another configuration)"
    return holder


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, or ROLLBACK on any error (a reader never sees half of what is inside)."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table that does not exist yet (cheap; safe to call on every connection)."""
    con.execute(SCHEMA_SQL)


def open_database(path: str, *, read_only: bool = False, wait_s: float = 0.0) -> duckdb.DuckDBPyConnection:
    """A connection to the file, waiting up to `wait_s` while another program holds it (then `DatabaseBusy`).

    Read-write connections get the schema; read-only ones skip DDL. Other errors propagate unchanged.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            holder = _busy_holder(exc)
            if holder is None:
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusy(path, holder) from None
            time.sleep(0.1)
    if not read_only:
        ensure_schema(con)
    return con


def connect(path: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection with the schema in place (read-only connections skip DDL); fails at once when busy."""
    return open_database(path, read_only=read_only)
