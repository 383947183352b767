"""The sources registry: channels, their Usersnap sources and the projects each source picked.

Only the *names* of a source's credential variables are stored here, never their values.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb

from usersnap_channels.warehouse.connection import transaction
from usersnap_channels.warehouse.feedback import FEEDBACK_TABLES


class RegistryError(Exception):
    """A channel, source or project that does not exist (or already exists)."""


@dataclass(frozen=True)
class Project:
    project_id: str
    name: str


@dataclass(frozen=True)
class Source:
    source_id: str
    channel_name: str
    source_name: str
    jwt_id_env: str
    jwt_secret_env: str
    backfill_window: str
    window_start: date
    status: str
    connected_at: datetime
    disconnected_at: datetime | None
    last_synced_at: datetime | None
    last_error: str | None
    projects: tuple[Project, ...] = ()

    @property
    def connected(self) -> bool:
        return self.status == "connected"

    @property
    def label(self) -> str:
        """How messages name a source: its name and its channel."""
        return f"source '{self.source_name}' of channel '{self.channel_name}'"


_SOURCE_COLUMNS = (
    "source_id, channel_name, source_name, jwt_id_env, jwt_secret_env, backfill_window, window_start, status, "
    "connected_at, disconnected_at, last_synced_at, last_error"
)


def list_sources(
    con: duckdb.DuckDBPyConnection,
    *,
    channel: str | None = None,
    source: str | None = None,
    connected_only: bool = False,
) -> list[Source]:
    """Sources with their picked projects, ordered by channel and name."""
    where, params = ["1=1"], []
    if channel is not None:
        where.append("channel_name = ?")
        params.append(channel)
    if source is not None:
        where.append("source_name = ?")
        params.append(source)
    if connected_only:
        where.append("status = 'connected'")
    rows = con.execute(
        f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE {' AND '.join(where)} ORDER BY channel_name, source_name",
        params,
    ).fetchall()
    projects: dict[str, list[Project]] = {}
    for source_id, project_id, name in con.execute(
        "SELECT source_id, project_id, project_name FROM source_projects ORDER BY project_name, project_id"
    ).fetchall():
        projects.setdefault(source_id, []).append(Project(project_id, name))
    return [Source(*row, projects=tuple(projects.get(row[0], ()))) for row in rows]


def get_source(con: duckdb.DuckDBPyConnection, channel: str, source: str) -> Source:
    found = list_sources(con, channel=channel, source=source)
    if not found:
        known = [f"{s.channel_name} / {s.source_name}" for s in list_sources(con)]
        hint = f" Known sources: {', '.join(known)}." if known else " No source is connected yet: run `connect`."
        raise RegistryError(f"No source '{source}' in channel '{channel}'.{hint}")
    return found[0]


def connect_source(
    con: duckdb.DuckDBPyConnection,
    *,
    channel: str,
    source: str,
    jwt_id_env: str,
    jwt_secret_env: str,
    backfill_window: str,
    window_start: date,
    projects: Sequence[Project],
    now: datetime | None = None,
) -> Source:
    """Register a source (creating its channel on first use). Re-connecting a disconnected source
    with the same name reconnects it with the new settings; a connected one is an error."""
    now = now or datetime.now(UTC)
    existing = list_sources(con, channel=channel, source=source)
    if existing and existing[0].connected:
        raise RegistryError(
            f"Channel '{channel}' already has a connected source '{source}'. Pick another --source name, "
            "or `disconnect` it first."
        )
    with transaction(con):
        if not con.execute("SELECT 1 FROM channels WHERE channel_name = ?", [channel]).fetchone():
            con.execute("INSERT INTO channels VALUES (?, ?)", [channel, now])
        if existing:
            source_id = existing[0].source_id
            con.execute(
                "UPDATE sources SET jwt_id_env = ?, jwt_secret_env = ?, backfill_window = ?, window_start = ?, "
                "status = 'connected', connected_at = ?, disconnected_at = NULL, last_error = NULL "
                "WHERE source_id = ?",
                [jwt_id_env, jwt_secret_env, backfill_window, window_start, now, source_id],
            )
            con.execute("DELETE FROM source_projects WHERE source_id = ?", [source_id])
        else:
            source_id = "src_" + uuid.uuid4().hex[:12]
            con.execute(
                f"INSERT INTO sources ({_SOURCE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'connected', ?, NULL, NULL, NULL)",
                [source_id, channel, source, jwt_id_env, jwt_secret_env, backfill_window, window_start, now],
            )
        con.executemany(
            "INSERT INTO source_projects VALUES (?, ?, ?)", [(source_id, p.project_id, p.name) for p in projects]
        )
    return get_source(con, channel, source)


def set_disconnected(con: duckdb.DuckDBPyConnection, source: Source, now: datetime | None = None) -> None:
    con.execute(
        "UPDATE sources SET status = 'disconnected', disconnected_at = ? WHERE source_id = ?",
        [now or datetime.now(UTC), source.source_id],
    )


def update_credentials(con: duckdb.DuckDBPyConnection, source: Source, jwt_id_env: str, jwt_secret_env: str) -> None:
    con.execute(
        "UPDATE sources SET jwt_id_env = ?, jwt_secret_env = ?, last_error = NULL WHERE source_id = ?",
        [jwt_id_env, jwt_secret_env, source.source_id],
    )


def record_sync(
    con: duckdb.DuckDBPyConnection, source_id: str, *, error: str | None, now: datetime | None = None
) -> None:
    """After a sync of the source: success sets `last_synced_at` and clears the error; failure keeps the
    last success and records the error."""
    if error is None:
        con.execute(
            "UPDATE sources SET last_synced_at = ?, last_error = NULL WHERE source_id = ?",
            [now or datetime.now(UTC), source_id],
        )
    else:
        con.execute("UPDATE sources SET last_error = ? WHERE source_id = ?", [error, source_id])


def delete_source(con: duckdb.DuckDBPyConnection, source: Source) -> dict[str, int]:
    """Remove the source, its registry rows and every row it imported, in one transaction; a channel left
    without any source goes too, with its themes, trends, names and history (an empty channel is only
    noise in `status`, and its themes would describe data that is gone). Returns rows deleted per table
    (`channels` is 1 when the channel was removed)."""
    deleted: dict[str, int] = {}
    tables = (*FEEDBACK_TABLES, "usersnap_projects", "source_projects")
    with transaction(con):
        for table in (*_optional_tables(con), *tables):
            row = con.execute(f"DELETE FROM {table} WHERE source_id = ?", [source.source_id]).fetchone()
            deleted[table] = int(row[0]) if row else 0
        con.execute("DELETE FROM sources WHERE source_id = ?", [source.source_id])
        if not con.execute("SELECT 1 FROM sources WHERE channel_name = ?", [source.channel_name]).fetchone():
            for table in _channel_tables(con):
                row = con.execute(f"DELETE FROM {table} WHERE channel_name = ?", [source.channel_name]).fetchone()
                deleted[table] = deleted.get(table, 0) + (int(row[0]) if row else 0)
    return deleted


def _channel_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every base table keyed by channel name (the themes' tables included), `channels` last."""
    names = [
        r[0]
        for r in con.execute(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_schema, table_name) WHERE c.column_name = 'channel_name' "
            "AND t.table_type = 'BASE TABLE' AND c.table_name NOT IN ('sources', 'channels') ORDER BY 1"
        ).fetchall()
    ]
    return [*names, "channels"]


def _optional_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The themes' per-source rows (a source's embeddings and assignments go with it)."""
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    return [t for t in ("data_point_themes", "data_point_embeddings") if t in names]


def data_point_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT source_id, count(*) FROM data_points GROUP BY source_id").fetchall())
