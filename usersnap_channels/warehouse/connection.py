"""Opening the channels DuckDB file: the one place that creates the schema and waits out another writer."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

from usersnap_channels.warehouse.schema import (
    SCHEMA_FINGERPRINT,
    SCHEMA_SQL,
    TABLES,
    VIEWS_SQL,
    comment_sql,
    comments,
)

log = logging.getLogger(__name__)


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


#: The DuckDB memory of the checkpoint that closes each of an import's connections. That checkpoint merges
#: the tables' small row groups into full ones, reading them back: under the pipeline's 64 MB limit it held
#: ~100 MB more at 50k items, the import's memory peak. The cap is set as the connection closes, so the
#: writes keep the wider limit (on a big file their scans for the units' old rows stay cached) and only the
#: merge, which DuckDB then runs evicting to the file it writes anyway, is held to it.
CHECKPOINT_MEMORY_LIMIT = "32MB"


def cap_memory(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Lower the database's `memory_limit` to `limit` (a DuckDB size such as "32MB"), never raise it.

    DuckDB keeps the setting per opened database, not per connection: it holds until the file's last
    connection in this process closes (an import's are its only ones while it writes)."""
    current, cap = con.execute(
        "SELECT parse_formatted_bytes(current_setting('memory_limit')), parse_formatted_bytes(?)", [limit]
    ).fetchall()[0]
    if cap < current:
        con.execute(f"SET memory_limit = '{int(cap)}B'")


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
    """Bring the file up to the schema module: tables, keys, comments and views, never dropping a row.

    It runs on every read-write connection, so the usual case is one lookup of `schema_version`; a new
    file, or one made by an earlier release, is brought up to date in one transaction."""
    if _applied_fingerprint(con) == SCHEMA_FINGERPRINT:
        return
    try:
        with transaction(con):
            con.execute(SCHEMA_SQL)
            complete = _add_constraints(con)
            con.execute(VIEWS_SQL)
            _apply_comments(con)
            if complete:
                con.execute("DELETE FROM schema_version")
                con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_FINGERPRINT])
    except duckdb.TransactionException:
        # another connection of this process brought the file up to date at the same moment
        if _applied_fingerprint(con) != SCHEMA_FINGERPRINT:
            raise


def _applied_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The fingerprint the file was last brought up to; None for a new file or an earlier release's."""
    try:
        # fetchall, not fetchone: DuckDB 2 keeps a half-read result open on the connection, and the caller's
        # next `register` (Arrow hand-off) would then fail with ResourceInUseException
        row = next(iter(con.execute("SELECT max(fingerprint) FROM schema_version").fetchall()), None)
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def _add_constraints(con: duckdb.DuckDBPyConnection) -> bool:
    """Give tables made by an earlier release their primary key and unique indexes. A table whose rows
    break a key keeps every row and goes without it (logged; retried on the next open): False then."""
    have = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
            "AND database_name = current_database() AND schema_name = 'main'"
        ).fetchall()
    }
    complete = True
    for table in TABLES.values():
        wanted = list(zip(table.unique, table.index_ddl(), strict=True))
        if table.primary_key and table.name not in have:
            wanted.insert(
                0, (table.primary_key, f"ALTER TABLE {table.name} ADD PRIMARY KEY ({', '.join(table.primary_key)})")
            )
        for cols, statement in wanted:
            dupes = con.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {table.name} GROUP BY {', '.join(cols)} HAVING count(*) > 1)"
            ).fetchall()[0][0]
            if dupes:
                log.warning("%s has %d duplicate (%s): no key added", table.name, dupes, ", ".join(cols))
                complete = False
            else:
                con.execute(statement)
    return complete


def _apply_comments(con: duckdb.DuckDBPyConnection) -> None:
    """`COMMENT ON` every table, column and view whose comment differs from the schema module's text."""
    current = {
        (r[0], r[1]): r[2]
        for r in con.execute(
            "SELECT table_name, NULL, comment FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT view_name, NULL, comment FROM duckdb_views() WHERE database_name = current_database() "
            "UNION ALL SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    wanted = comments()
    for key, statement in comment_sql().items():
        if current.get(key) != wanted[key]:
            con.execute(statement)


def open_database(
    path: str, *, read_only: bool = False, wait_s: float = 0.0, on_wait: Callable[[str], None] | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection to the file, waiting up to `wait_s` while another program holds it (then `DatabaseBusy`).

    `on_wait(holder)` is called once, when the wait starts, so a person knows what they are waiting for.
    Read-write connections get the schema; read-only ones skip DDL. Other errors propagate unchanged.
    """
    deadline = time.monotonic() + wait_s
    waiting = False
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
            if not waiting and on_wait is not None:
                on_wait(holder)
            waiting = True
            time.sleep(0.1)
    if not read_only:
        ensure_schema(con)
    return con


def connect(path: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection with the schema in place (read-only connections skip DDL); fails at once when busy."""
    return open_database(path, read_only=read_only)
