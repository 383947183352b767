"""Reads and writes of the theme tables: embeddings, themes, assignments, trends, events, renames.

Everything here is plain SQL over what the themes layer computed; no model or clustering code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa

from usersnap_channels.warehouse.connection import transaction
from usersnap_channels.warehouse.schema import EMBEDDING_DIM, TABLES

_VECTOR = pa.list_(pa.float32(), EMBEDDING_DIM)


@dataclass(frozen=True)
class PendingText:
    """A data point whose current text has no embedding for the model yet."""

    source_id: str
    feedback_id: str
    channel_name: str
    text_sha256: str
    text: str


def texts_to_embed(
    con: duckdb.DuckDBPyConnection,
    model: str,
    *,
    channel: str | None = None,
    days: tuple[date, date] | None = None,
) -> list[PendingText]:
    """Non-empty texts of data points (of a channel, or partitions in `days`) not embedded for `model` as
    they are now (a changed text has another hash)."""
    where, params = ["trim(d.text) <> ''"], [model]
    if channel is not None:
        where.append("d.channel_name = ?")
        params.append(channel)
    if days is not None:
        where.append("d.partition_date BETWEEN ? AND ?")
        params += list(days)
    rows = con.execute(
        f"""
        SELECT d.source_id, d.feedback_id, d.channel_name, sha256(d.text), d.text
        FROM data_points d
        LEFT JOIN data_point_embeddings e
          ON e.source_id = d.source_id AND e.feedback_id = d.feedback_id AND e.model = ?
             AND e.text_sha256 = sha256(d.text)
        WHERE e.feedback_id IS NULL AND {" AND ".join(where)}
        ORDER BY d.source_id, d.feedback_id
        """,
        params,
    ).fetchall()
    return [PendingText(*row) for row in rows]


def write_embeddings(
    con: duckdb.DuckDBPyConnection, model: str, pending: Sequence[PendingText], vectors: np.ndarray
) -> int:
    """Store the vectors of `pending` (replacing any older embedding of those data points for the model)."""
    if not pending:
        return 0
    now = datetime.now(UTC)
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    rows = pa.table(
        {
            "source_id": [p.source_id for p in pending],
            "feedback_id": [p.feedback_id for p in pending],
            "model": [model] * len(pending),
            "text_sha256": [p.text_sha256 for p in pending],
            "vector": pa.FixedSizeListArray.from_arrays(flat, EMBEDDING_DIM),
            "embedded_at": [now] * len(pending),
        },
        schema=TABLES["data_point_embeddings"].arrow_schema(),
    )
    with transaction(con):
        con.register("_emb", rows)
        con.execute(
            "DELETE FROM data_point_embeddings e USING _emb n WHERE e.source_id = n.source_id "
            "AND e.feedback_id = n.feedback_id AND e.model = n.model"
        )
        con.execute("INSERT INTO data_point_embeddings BY NAME SELECT * FROM _emb")
        con.unregister("_emb")
    return rows.num_rows


def drop_orphans(con: duckdb.DuckDBPyConnection) -> None:
    """Embeddings and assignments of data points that no longer exist (deleted in Usersnap and re-imported)."""
    for table in ("data_point_themes", "data_point_embeddings"):
        con.execute(
            f"DELETE FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM data_points d "
            "WHERE d.source_id = t.source_id AND d.feedback_id = t.feedback_id)"
        )


@dataclass
class ChannelVectors:
    """Every embedded data point of a channel for one model, in a fixed order (source_id, feedback_id)."""

    keys: list[tuple[str, str]]
    texts: list[str]
    vectors: np.ndarray
    submitted_at: list[datetime]


#: Rows per Arrow batch when streaming vectors out of DuckDB (8192 x 384 float32 = 12 MB).
VECTOR_BATCH_ROWS = 8192


def channel_vectors(
    con: duckdb.DuckDBPyConnection, channel: str, model: str, *, unthemed_only: bool = False, days=None
) -> ChannelVectors:
    """The current embeddings of a channel's data points (optionally only those without a theme, or only
    those of partitions in `days`), as one float32 array.

    Why two passes: joining and sorting the vectors themselves makes DuckDB hold all of them at once (77 MB
    at 50k data points), beyond the pipeline's memory_limit (64 MB): an out-of-memory error. So the first
    pass sorts keys and embedding rowids only, and the second streams the vectors in Arrow batches straight
    into their rows of a preallocated array; both in one transaction, so rowids cannot move in between.
    """
    with transaction(con):
        table = _embedded_rows(con, channel, model, unthemed_only=unthemed_only, days=days)
        rowids = table["rowid"].to_numpy()
        vectors = _vectors_by_rowid(con, model, rowids)
    return ChannelVectors(
        keys=list(zip(table["source_id"].to_pylist(), table["feedback_id"].to_pylist(), strict=True)),
        texts=table["text"].to_pylist(),
        vectors=vectors,
        submitted_at=table["submitted_at"].to_pylist(),
    )


def _embedded_rows(con: duckdb.DuckDBPyConnection, channel: str, model: str, *, unthemed_only: bool, days) -> pa.Table:
    """Keys, texts, submission times and embedding rowids of the channel's embedded data points, in order."""
    where, params = ["d.channel_name = ?"], [model, channel]
    if unthemed_only:
        where.append(
            "NOT EXISTS (SELECT 1 FROM data_point_themes t WHERE t.source_id = d.source_id "
            "AND t.feedback_id = d.feedback_id)"
        )
    if days is not None:
        where.append("d.partition_date BETWEEN ? AND ?")
        params += list(days)
    return con.sql(
        f"""
        SELECT d.source_id, d.feedback_id, d.text, d.submitted_at, e.rowid
        FROM data_points d JOIN data_point_embeddings e
          ON e.source_id = d.source_id AND e.feedback_id = d.feedback_id AND e.model = ?
             AND e.text_sha256 = sha256(d.text)
        WHERE {" AND ".join(where)}
        ORDER BY d.source_id, d.feedback_id
        """,
        params=params,
    ).to_arrow_table()


def _vectors_by_rowid(con: duckdb.DuckDBPyConnection, model: str, rowids: np.ndarray) -> np.ndarray:
    """The vectors of the given embedding rowids, in that order, read as a stream of Arrow batches."""
    out = np.zeros((len(rowids), EMBEDDING_DIM), dtype=np.float32)
    if len(rowids) == 0:
        return out
    order = np.argsort(rowids, kind="stable")
    wanted = rowids[order]
    reader = con.sql(
        "SELECT rowid, vector FROM data_point_embeddings WHERE model = ? AND rowid BETWEEN ? AND ?",
        params=[model, int(wanted[0]), int(wanted[-1])],
    ).to_arrow_reader(VECTOR_BATCH_ROWS)
    for batch in reader:
        got = batch.column(0).to_numpy()
        at = np.minimum(np.searchsorted(wanted, got), len(wanted) - 1)
        hit = wanted[at] == got
        flat = batch.column(1).values.to_numpy(zero_copy_only=False)
        out[order[at[hit]]] = flat.reshape(len(got), EMBEDDING_DIM)[hit]
    return out


def current_assignment(con: duckdb.DuckDBPyConnection, channel: str) -> dict[tuple[str, str], int]:
    """(source_id, feedback_id) → theme id, for the channel's themed data points."""
    rows = con.execute(
        "SELECT t.source_id, t.feedback_id, t.theme_id FROM data_point_themes t JOIN data_points d "
        "USING (source_id, feedback_id) WHERE d.channel_name = ?",
        [channel],
    ).fetchall()
    return {(r[0], r[1]): int(r[2]) for r in rows}


@dataclass(frozen=True)
class Centroids:
    ids: list[int]
    vectors: np.ndarray


def active_centroids(con: duckdb.DuckDBPyConnection, channel: str) -> Centroids:
    rows = con.execute(
        "SELECT theme_id, centroid FROM themes WHERE channel_name = ? AND status = 'active' "
        "AND centroid IS NOT NULL ORDER BY theme_id",
        [channel],
    ).fetchall()
    vectors = np.array([r[1] for r in rows], dtype=np.float32).reshape(len(rows), EMBEDDING_DIM)
    return Centroids([int(r[0]) for r in rows], vectors)


def next_theme_id(con: duckdb.DuckDBPyConnection) -> int:
    """Theme ids are unique across channels and never reused (retired themes keep theirs)."""
    return int(con.execute("SELECT coalesce(max(theme_id), 0) + 1 FROM themes").fetchone()[0])


def write_assignments(
    con: duckdb.DuckDBPyConnection,
    keys: Sequence[tuple[str, str]],
    theme_ids: Sequence[int | None],
    scores: np.ndarray,
    method: str,
) -> int:
    """Add or replace the theme of each key; a None theme removes the key's row (unassigned)."""
    now = datetime.now(UTC)
    rows = pa.table(
        {
            "source_id": [k[0] for k in keys],
            "feedback_id": [k[1] for k in keys],
            "theme_id": pa.array(theme_ids, pa.int64()),
            "score": pa.array(np.asarray(scores, dtype=np.float32)),
            "method": [method] * len(keys),
            "assigned_at": [now] * len(keys),
        }
    )
    with transaction(con):
        con.register("_asg", rows)
        con.execute(
            "DELETE FROM data_point_themes t USING _asg a WHERE t.source_id = a.source_id "
            "AND t.feedback_id = a.feedback_id"
        )
        con.execute("INSERT INTO data_point_themes BY NAME SELECT * FROM _asg WHERE theme_id IS NOT NULL")
        con.unregister("_asg")
    return sum(1 for t in theme_ids if t is not None)


def refresh_theme_stats(con: duckdb.DuckDBPyConnection, channel: str | None = None) -> None:
    """Sizes and first/last seen of every theme from its current members (after imports, deletes)."""
    where, params = ("WHERE th.channel_name = ?", [channel]) if channel else ("", [])
    con.execute(
        f"""
        UPDATE themes th SET size = coalesce(s.n, 0), first_seen = s.first_seen, last_seen = s.last_seen
        FROM (
            SELECT th2.channel_name, th2.theme_id, count(d.feedback_id) AS n,
                   min(d.submitted_at) AS first_seen, max(d.submitted_at) AS last_seen
            FROM themes th2
            LEFT JOIN data_point_themes t ON t.theme_id = th2.theme_id
            LEFT JOIN data_points d ON d.source_id = t.source_id AND d.feedback_id = t.feedback_id
                 AND d.channel_name = th2.channel_name
            GROUP BY ALL
        ) s
        WHERE th.channel_name = s.channel_name AND th.theme_id = s.theme_id {where.replace("WHERE", "AND")}
        """,
        params,
    )


def refresh_trends(con: duckdb.DuckDBPyConnection, channel: str | None = None) -> int:
    """Rebuild `theme_trends` (for one channel, or all) from the current assignments."""
    scope, params = ("WHERE d.channel_name = ?", [channel]) if channel else ("", [])
    with transaction(con):
        con.execute(f"DELETE FROM theme_trends {'WHERE channel_name = ?' if channel else ''}", params)
        con.execute(
            f"""
            INSERT INTO theme_trends
            SELECT d.channel_name, t.theme_id, (d.submitted_at AT TIME ZONE 'UTC')::DATE AS day,
                   count(*)::INTEGER
            FROM data_point_themes t JOIN data_points d USING (source_id, feedback_id)
            {scope}
            GROUP BY ALL
            """,
            params,
        )
    return int(con.execute("SELECT count(*) FROM theme_trends").fetchone()[0])


def rename_theme(con: duckdb.DuckDBPyConnection, channel: str, theme_id: int, label: str) -> None:
    """Give a theme a name that survives recomputes (an empty label goes back to the automatic one)."""
    with transaction(con):
        con.execute("DELETE FROM theme_labels WHERE channel_name = ? AND theme_id = ?", [channel, theme_id])
        if label:
            con.execute("INSERT INTO theme_labels VALUES (?, ?, ?, ?)", [channel, theme_id, label, datetime.now(UTC)])
        con.execute(
            "UPDATE themes SET label = coalesce(nullif(?, ''), auto_label), updated_at = ? "
            "WHERE channel_name = ? AND theme_id = ?",
            [label, datetime.now(UTC), channel, theme_id],
        )


@dataclass(frozen=True)
class ThemeRow:
    """One active theme as a recompute found it."""

    theme_id: int
    auto_label: str
    keywords: list[str]
    size: int
    centroid: np.ndarray


@dataclass(frozen=True)
class EventRow:
    theme_id: int
    event: str
    related: list[int]
    data_points: int


@dataclass(frozen=True)
class RecomputeRow:
    reason: str
    model: str
    data_points: int
    unassigned: int
    seconds: float


def write_recompute(
    con: duckdb.DuckDBPyConnection,
    channel: str,
    themes: Sequence[ThemeRow],
    events: Sequence[EventRow],
    record: RecomputeRow,
) -> int:
    """Replace the channel's active themes (themes that are gone are kept as `retired`) and record the
    recompute and its events, in one transaction; returns the recompute id. Assignments are written apart."""
    now = datetime.now(UTC)
    ids = [t.theme_id for t in themes]
    with transaction(con):
        recompute_id = int(
            con.execute(
                "SELECT coalesce(max(recompute_id), 0) + 1 FROM theme_recomputes WHERE channel_name = ?", [channel]
            ).fetchone()[0]
        )
        created = dict(
            con.execute("SELECT theme_id, created_at FROM themes WHERE channel_name = ?", [channel]).fetchall()
        )
        con.execute(
            "UPDATE themes SET status = 'retired', size = 0, updated_at = ? WHERE channel_name = ? "
            "AND status = 'active' AND NOT list_contains(?, theme_id)",
            [now, channel, ids],
        )
        con.execute("DELETE FROM themes WHERE channel_name = ? AND list_contains(?, theme_id)", [channel, ids])
        con.register("_themes", _theme_table(channel, themes, created, now))
        con.execute(
            """
            INSERT INTO themes BY NAME
            SELECT t.* REPLACE (coalesce(l.label, t.auto_label) AS label)
            FROM _themes t LEFT JOIN theme_labels l USING (channel_name, theme_id)
            """
        )
        con.unregister("_themes")
        for e in events:
            con.execute(
                "INSERT INTO theme_events VALUES (?, ?, ?, ?, ?, ?, ?)",
                [channel, recompute_id, e.theme_id, e.event, e.related, e.data_points, now],
            )
        con.execute(
            "INSERT INTO theme_recomputes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                channel,
                recompute_id,
                record.reason,
                record.model,
                record.data_points,
                len(themes),
                record.unassigned,
                record.seconds,
                now,
            ],
        )
    return recompute_id


def _theme_table(channel: str, themes: Sequence[ThemeRow], created: dict[int, datetime], now: datetime) -> pa.Table:
    flat = np.concatenate([t.centroid.astype(np.float32) for t in themes]) if themes else np.zeros(0, np.float32)
    return pa.table(
        {
            "channel_name": [channel] * len(themes),
            "theme_id": pa.array([t.theme_id for t in themes], pa.int64()),
            "label": [t.auto_label for t in themes],
            "auto_label": [t.auto_label for t in themes],
            "keywords": [list(t.keywords) for t in themes],
            "size": pa.array([t.size for t in themes], pa.int32()),
            "first_seen": pa.array([None] * len(themes), pa.timestamp("us", tz="UTC")),
            "last_seen": pa.array([None] * len(themes), pa.timestamp("us", tz="UTC")),
            "status": ["active"] * len(themes),
            "centroid": pa.FixedSizeListArray.from_arrays(pa.array(flat), EMBEDDING_DIM),
            "created_at": [created.get(t.theme_id, now) for t in themes],
            "updated_at": [now] * len(themes),
        }
    )


@dataclass(frozen=True)
class Drift:
    """What changed in a channel since its last recompute (the inputs of the drift rule)."""

    last_recompute_data_points: int | None
    embedded_now: int
    added_since: int
    unassigned_added: int


def drift_stats(con: duckdb.DuckDBPyConnection, channel: str, model: str) -> Drift:
    """Embedded data points now, and of those embedded after the last recompute, how many have no theme."""
    last = con.execute(
        "SELECT data_points, computed_at FROM theme_recomputes WHERE channel_name = ? AND model = ? "
        "ORDER BY recompute_id DESC LIMIT 1",
        [channel, model],
    ).fetchone()
    since = last[1] if last else datetime(1970, 1, 1, tzinfo=UTC)
    now_count, added, unassigned = con.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE e.embedded_at > ?),
               count(*) FILTER (WHERE e.embedded_at > ? AND t.theme_id IS NULL)
        FROM data_points d
        JOIN data_point_embeddings e ON e.source_id = d.source_id AND e.feedback_id = d.feedback_id
             AND e.model = ? AND e.text_sha256 = sha256(d.text)
        LEFT JOIN data_point_themes t ON t.source_id = d.source_id AND t.feedback_id = d.feedback_id
        WHERE d.channel_name = ?
        """,
        [since, since, model, channel],
    ).fetchone()
    return Drift(int(last[0]) if last else None, int(now_count), int(added), int(unassigned))


def channels_in(con: duckdb.DuckDBPyConnection, days: tuple[date, date] | None = None) -> list[str]:
    """Channels with data points (in the partitions of `days`, when given)."""
    where, params = ("WHERE partition_date BETWEEN ? AND ?", list(days)) if days else ("", [])
    return [
        r[0]
        for r in con.execute(f"SELECT DISTINCT channel_name FROM data_points {where} ORDER BY 1", params).fetchall()
    ]


def search(
    con: duckdb.DuckDBPyConnection, model: str, vector: np.ndarray, *, channel: str | None, limit: int
) -> list[tuple]:
    """(similarity, channel, source, submitted_at, text, link) of the nearest data points, best first."""
    where, params = ("AND d.channel_name = ?", [channel]) if channel else ("", [])
    return con.execute(
        f"""
        SELECT array_cosine_similarity(e.vector, ?::FLOAT[{EMBEDDING_DIM}]) AS similarity, d.channel_name,
               d.source_name, d.submitted_at, d.text, d.link
        FROM data_points d JOIN data_point_embeddings e
          ON e.source_id = d.source_id AND e.feedback_id = d.feedback_id AND e.model = ?
             AND e.text_sha256 = sha256(d.text)
        WHERE true {where}
        ORDER BY similarity DESC, d.submitted_at DESC
        LIMIT ?
        """,
        [vector.tolist(), model, *params, limit],
    ).fetchall()


def themed_per_day(con: duckdb.DuckDBPyConnection, days: tuple[date, date]) -> dict[str, tuple[int, int, int, int]]:
    """Per partition day (as its key): (themed data points, data points with text, embedded ones, data points
    with an empty text — never embedded, counted apart)."""
    rows = con.execute(
        """
        SELECT d.partition_date::VARCHAR, count(t.theme_id), count(*) FILTER (WHERE trim(d.text) <> ''),
               count(e.feedback_id) FILTER (WHERE trim(d.text) <> ''), count(*) FILTER (WHERE trim(d.text) = '')
        FROM data_points d
        LEFT JOIN data_point_themes t USING (source_id, feedback_id)
        LEFT JOIN (SELECT DISTINCT source_id, feedback_id FROM data_point_embeddings) e USING (source_id, feedback_id)
        WHERE d.partition_date BETWEEN ? AND ?
        GROUP BY ALL
        """,
        list(days),
    ).fetchall()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


def trend_mismatches(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int, int]]:
    """(channel, theme, trend total, themed data points) wherever the two differ."""
    return con.execute(
        """
        WITH tr AS (SELECT channel_name, theme_id, sum(data_points)::BIGINT AS n FROM theme_trends GROUP BY ALL),
             th AS (SELECT d.channel_name, t.theme_id, count(*) AS n
                    FROM data_point_themes t JOIN data_points d USING (source_id, feedback_id) GROUP BY ALL)
        SELECT coalesce(tr.channel_name, th.channel_name), coalesce(tr.theme_id, th.theme_id),
               coalesce(tr.n, 0), coalesce(th.n, 0)
        FROM tr FULL JOIN th ON tr.channel_name = th.channel_name AND tr.theme_id = th.theme_id
        WHERE coalesce(tr.n, 0) <> coalesce(th.n, 0)
        """
    ).fetchall()
