"""The DuckDB tables, column by column: the analysts' contract in one place.

The DDL, the Arrow schemas of bulk inserts, the Dagster column metadata and the README's table
reference are all derived from `TABLES`, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # fetch workers import this module without paying for Dagster
    import dagster as dg

#: Dimensions of the stored text embeddings (all-MiniLM-L6-v2).
EMBEDDING_DIM = 384


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    description: str
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    description: str
    columns: tuple[Column, ...]
    #: Columns of the PRIMARY KEY (what the README promises unique), empty for none.
    primary_key: tuple[str, ...] = ()
    #: Further unique column sets, enforced by unique indexes (an existing file can gain those).
    unique: tuple[tuple[str, ...], ...] = ()
    #: Unique by design but not a constraint: the import keeps it (whole units replaced in one transaction)
    #: and the count check would see a duplicate; a primary key here cost the 30-day import 5.8 %.
    checked_key: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def comment(self) -> str:
        """The table's `COMMENT`: the README's heading and paragraph in one sentence."""
        return f"One row per {self.grain}. {self.description}"

    def ddl(self) -> str:
        cols = [f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns]
        if self.primary_key:
            cols.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        body = ",\n    ".join(cols)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n);"

    def index_ddl(self) -> list[str]:
        """`CREATE UNIQUE INDEX` for each `unique` column set (also valid on a table that already exists)."""
        return [
            f"CREATE UNIQUE INDEX IF NOT EXISTS {self.name}_{'_'.join(cols)}_key ON {self.name} ({', '.join(cols)});"
            for cols in self.unique
        ]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, _ARROW_TYPES[c.sql_type], nullable=c.nullable) for c in self.columns])

    def dagster_schema(self) -> dg.TableSchema:
        import dagster as dg

        return dg.TableSchema(
            columns=[
                dg.TableColumn(
                    c.name,
                    c.sql_type,
                    description=c.description,
                    constraints=dg.TableColumnConstraints(nullable=c.nullable),
                )
                for c in self.columns
            ]
        )


_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR[]": pa.list_(pa.string()),
    "BIGINT[]": pa.list_(pa.int64()),
    "FLOAT": pa.float32(),
    f"FLOAT[{EMBEDDING_DIM}]": pa.list_(pa.float32(), EMBEDDING_DIM),
}

C = Column
_CHANNEL = C("channel_name", "VARCHAR", "The channel.", False)
_THEME_ID = C("theme_id", "BIGINT", "Stable id of the theme: kept across recomputes while the theme exists.", False)
_SOURCE_ID = C("source_id", "VARCHAR", "The source (Usersnap connection) the row belongs to; see `sources`.", False)
_FEEDBACK_ID = C("feedback_id", "VARCHAR", "Usersnap's id of the feedback item (a UUID).", False)
_PROJECT_ID = C("project_id", "VARCHAR", "Usersnap project id (a UUID).", False)
_PARTITION_DATE = C("partition_date", "DATE", "UTC day of the item's `created_at`: its daily partition.", False)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "channels",
            "channel",
            "Named collections of data points, created on first `connect`.",
            (
                C("channel_name", "VARCHAR", "The channel's name, unique.", False),
                C("created_at", "TIMESTAMPTZ", "When the channel was created.", False),
            ),
            primary_key=("channel_name",),
        ),
        Table(
            "sources",
            "source",
            "Usersnap connections. Only the names of the credential variables are stored, never their values.",
            (
                C("source_id", "VARCHAR", "Stable id of the source (`src_` + 12 hex digits).", False),
                C("channel_name", "VARCHAR", "The channel the source feeds.", False),
                C("source_name", "VARCHAR", "The source's name, unique within its channel.", False),
                C("jwt_id_env", "VARCHAR", "Name of the environment variable holding the JWT ID.", False),
                C("jwt_secret_env", "VARCHAR", "Name of the environment variable holding the JWT Secret.", False),
                C("backfill_window", "VARCHAR", "`7d`, `30d`, `90d` or `6m`.", False),
                C("window_start", "DATE", "First UTC day imported: connect day minus the window.", False),
                C("status", "VARCHAR", "`connected` or `disconnected` (disconnected sources are never polled).", False),
                C("connected_at", "TIMESTAMPTZ", "When the source was (last) connected.", False),
                C("disconnected_at", "TIMESTAMPTZ", "When it was disconnected; NULL while connected."),
                C("last_synced_at", "TIMESTAMPTZ", "End of the last sync in which every day of it succeeded."),
                C("last_error", "VARCHAR", "The last sync's error for this source; NULL after a clean sync."),
            ),
            primary_key=("source_id",),
            unique=(("channel_name", "source_name"),),
        ),
        Table(
            "source_projects",
            "picked project",
            "The Usersnap projects each source imports.",
            (
                _SOURCE_ID,
                _PROJECT_ID,
                C("project_name", "VARCHAR", "The project's name when it was picked.", False),
            ),
        ),
        Table(
            "usersnap_projects",
            "project a connected key can see",
            "Every Usersnap project visible to each connected source's key; refreshed by `usersnap_projects`.",
            (
                _SOURCE_ID,
                _PROJECT_ID,
                C("name", "VARCHAR", "Project name in Usersnap."),
                C("feedback_count", "BIGINT", "Items in the project, as Usersnap counts them."),
                C("open_feedback_count", "BIGINT", "Open items, as Usersnap counts them."),
                C("is_live", "BOOLEAN", "Whether the project's widget is live."),
                C("created_at", "TIMESTAMPTZ", "When the project was created in Usersnap."),
                C("refreshed_at", "TIMESTAMPTZ", "When this row was fetched.", False),
            ),
        ),
        Table(
            "raw_feedback",
            "fetched item",
            "Usersnap items as fetched, minus the never-imported fields (screenshot image, screen recording, "
            "assignee, updated/resolved timestamps). Replaced per (source, project, day) on every sync.",
            (
                _SOURCE_ID,
                _PROJECT_ID,
                _PARTITION_DATE,
                _FEEDBACK_ID,
                C("created_at", "TIMESTAMPTZ", "When the feedback was submitted (UTC).", False),
                C("item", "JSON", "The item's JSON, never-imported fields removed, numbers with every digit.", False),
                C("fetched_at", "TIMESTAMPTZ", "When this copy was fetched.", False),
            ),
            checked_key=("source_id", "feedback_id"),
        ),
        Table(
            "data_points",
            "data point",
            "One row per imported feedback item per channel: what analysts query.",
            (
                C("channel_name", "VARCHAR", "The channel the data point belongs to.", False),
                _SOURCE_ID,
                C("source_name", "VARCHAR", "The source's name.", False),
                _PROJECT_ID,
                C("project_name", "VARCHAR", "The project's name."),
                _FEEDBACK_ID,
                C("feedback_number", "BIGINT", "Usersnap's per-project running number (#123 in the UI)."),
                C("submitted_at", "TIMESTAMPTZ", "When the feedback was submitted (`created_at`).", False),
                C("link", "VARCHAR", "Usersnap's `public_link`: opens the item and its screenshot in Usersnap."),
                C("email", "VARCHAR", "Submitter's email; NULL when not given."),
                C("status", "VARCHAR", "Usersnap `status_type` (open, in_progress, done, closed …); NULL when absent."),
                C("priority", "VARCHAR", "Usersnap priority (low, medium, high, urgent); NULL when absent."),
                C("tags", "VARCHAR[]", "Names of the item's Usersnap labels; `[]` when none.", False),
                C("text", "VARCHAR", "Every turn's text joined by blank lines; `''` when the item has no text.", False),
                C("imported_at", "TIMESTAMPTZ", "When this row was written.", False),
                _PARTITION_DATE,
            ),
            checked_key=("source_id", "feedback_id"),
        ),
        Table(
            "data_point_turns",
            "conversation turn",
            "The texts of a data point in order: text inputs, then screenshot comments.",
            (
                _SOURCE_ID,
                _FEEDBACK_ID,
                C("turn", "INTEGER", "1, 2, … in order.", False),
                C("label", "VARCHAR", "The input's label, or `Screenshot comment`; NULL for an unlabelled input."),
                C("text", "VARCHAR", "What the user wrote.", False),
            ),
        ),
        Table(
            "data_point_fields",
            "filterable field",
            "Non-text form inputs and flattened `custom_data`, as name/value pairs.",
            (
                _SOURCE_ID,
                _FEEDBACK_ID,
                C(
                    "name",
                    "VARCHAR",
                    "Input label (`Input <order>` if none, ` (2)` for repeats) or custom_data key path (`user.id`).",
                    False,
                ),
                C("value", "VARCHAR", "The value as text, every digit kept.", False),
                C("value_type", "VARCHAR", "`boolean`, `number`, `text` or `json`.", False),
                C("origin", "VARCHAR", "`form` (an input of the widget) or `custom_data` (set by the SDK).", False),
            ),
        ),
        Table(
            "rejected_items",
            "item that could not be mapped",
            "Malformed items, kept with the reason instead of being dropped; they never fail a partition.",
            (
                _SOURCE_ID,
                _PROJECT_ID,
                _PARTITION_DATE,
                C("feedback_id", "VARCHAR", "The item's id when readable."),
                C("reason", "VARCHAR", "Why it could not be mapped.", False),
                C("payload", "VARCHAR", "The item's JSON, never-imported fields removed.", False),
                C("seen_at", "TIMESTAMPTZ", "When it was fetched.", False),
            ),
        ),
        Table(
            "data_point_embeddings",
            "embedded data point text and model",
            "Each data point's text embedded once per model, keyed by a hash of the text: re-imports and "
            "re-theming never embed an unchanged text again, a model change embeds anew. Empty texts are not "
            "embedded. Semantic search in SQL: `array_cosine_similarity(vector, ?::FLOAT[384])`.",
            (
                _SOURCE_ID,
                _FEEDBACK_ID,
                C("model", "VARCHAR", "The embedding model (name and pinned file hash prefix).", False),
                C("text_sha256", "VARCHAR", "sha256 of the embedded `data_points.text` (UTF-8).", False),
                C("vector", f"FLOAT[{EMBEDDING_DIM}]", "Unit-length sentence embedding of the text.", False),
                C("embedded_at", "TIMESTAMPTZ", "When the text was embedded.", False),
            ),
        ),
        Table(
            "themes",
            "theme of a channel (retired themes kept)",
            "What a channel's data points are about, found offline from their embeddings; ids are stable across "
            "recomputes. Retired themes stay (status `retired`) so old trend lines keep their names.",
            (
                _CHANNEL,
                _THEME_ID,
                C("label", "VARCHAR", "Short human-readable name: a person's rename if any, else `auto_label`.", False),
                C("auto_label", "VARCHAR", "The label made from the top keywords at the last recompute.", False),
                C("keywords", "VARCHAR[]", "Class-based TF-IDF keywords of the theme's texts, best first.", False),
                C("size", "INTEGER", "Data points in the theme now.", False),
                C("first_seen", "TIMESTAMPTZ", "Earliest `submitted_at` of its data points."),
                C("last_seen", "TIMESTAMPTZ", "Latest `submitted_at` of its data points."),
                C("status", "VARCHAR", "`active`, or `retired` (merged away or gone at a recompute).", False),
                C("centroid", f"FLOAT[{EMBEDDING_DIM}]", "Unit mean embedding of its members (for assignment)."),
                C("created_at", "TIMESTAMPTZ", "When the theme was first found.", False),
                C("updated_at", "TIMESTAMPTZ", "When the theme's row last changed.", False),
            ),
        ),
        Table(
            "data_point_themes",
            "themed data point",
            "Which theme each data point belongs to: exactly one row per themed data point; a data point that "
            "fits no theme well has no row (it counts as unassigned).",
            (
                _SOURCE_ID,
                _FEEDBACK_ID,
                _THEME_ID,
                C("score", "FLOAT", "Cosine similarity of the data point's embedding to the theme's centroid.", False),
                C("method", "VARCHAR", "`recompute` (full theming) or `nearest` (assigned on import).", False),
                C("assigned_at", "TIMESTAMPTZ", "When it was assigned.", False),
            ),
        ),
        Table(
            "theme_trends",
            "channel, theme and UTC day with data points",
            "Data points per theme and UTC day of `submitted_at`: exactly the themed data points of that day.",
            (
                _CHANNEL,
                _THEME_ID,
                C("day", "DATE", "UTC day of the data points' `submitted_at`.", False),
                C("data_points", "INTEGER", "Data points of the theme submitted that day.", False),
            ),
        ),
        Table(
            "theme_labels",
            "renamed theme",
            "Names people gave themes (`usersnap-channels themes rename`); they survive every recompute.",
            (
                _CHANNEL,
                _THEME_ID,
                C("label", "VARCHAR", "The name given.", False),
                C("renamed_at", "TIMESTAMPTZ", "When.", False),
            ),
        ),
        Table(
            "theme_events",
            "change to a theme at a recompute",
            "How themes changed at each recompute, so trend lines can be followed across them: `new`, `continued`, "
            "`merged` (other themes absorbed into this one), `split` (a new theme carved out of `related`), "
            "`retired` (gone; `related` holds the theme that took most of its data points, if any).",
            (
                _CHANNEL,
                C("recompute_id", "BIGINT", "The recompute (see `theme_recomputes`).", False),
                _THEME_ID,
                C("event", "VARCHAR", "`new`, `continued`, `merged`, `split` or `retired`.", False),
                C("related", "BIGINT[]", "The other themes involved (absorbed, split from, merged into).", False),
                C("data_points", "INTEGER", "The theme's size after the recompute (0 when retired).", False),
                C("computed_at", "TIMESTAMPTZ", "When the recompute ran.", False),
            ),
        ),
        Table(
            "theme_recomputes",
            "full recompute of a channel's themes",
            "Every full recompute: why it ran and what it found (the drift rule compares against the last one).",
            (
                _CHANNEL,
                C("recompute_id", "BIGINT", "Increasing id of the recompute.", False),
                C("reason", "VARCHAR", "`first`, `drift-unassigned`, `drift-growth`, `schedule` or `manual`.", False),
                C("model", "VARCHAR", "The embedding model.", False),
                C("data_points", "INTEGER", "Embedded data points of the channel at the time.", False),
                C("themes", "INTEGER", "Active themes after it.", False),
                C("unassigned", "INTEGER", "Embedded data points left without a theme.", False),
                C("seconds", "DOUBLE", "Wall time of the recompute.", False),
                C("computed_at", "TIMESTAMPTZ", "When it ran.", False),
            ),
        ),
        Table(
            "sync_state",
            "imported unit (source, project, day)",
            "Bookkeeping: which (source, project, day) units were imported, when, and how many items each held.",
            (
                _SOURCE_ID,
                _PROJECT_ID,
                _PARTITION_DATE,
                C("items", "INTEGER", "Data points written for the unit.", False),
                C("rejected", "INTEGER", "Rejected items of the unit.", False),
                C("synced_at", "TIMESTAMPTZ", "When the unit was last imported.", False),
                C("run_id", "VARCHAR", "The Dagster run that imported it."),
            ),
        ),
        Table(
            "schema_version",
            "database",
            "Bookkeeping: the fingerprint of the tables, constraints, comments and views this file was last "
            "brought up to. Opening the file compares it and changes nothing when it matches.",
            (
                C("fingerprint", "VARCHAR", "sha256 prefix of the schema's DDL, comments and views.", False),
                C("applied_at", "TIMESTAMPTZ", "When the file was brought up to it.", False),
            ),
        ),
    )
}

#: Emerging themes: the last 7 UTC days against the 28 before, with at least this many data points lately.
EMERGING_MIN_RECENT = 5
#: ... and at least this multiple of their weekly average over the 4 weeks before (none before counts).
EMERGING_MIN_RATIO = 2.0


def growth_sql(today: str) -> str:
    """Per active theme: data points in the last 7 UTC days up to `today` (an SQL date expression) and in the
    28 days before; `growth` is the last 7 days against the weekly average of the 28 before, minus 1 (NULL
    when there were none before); `emerging` marks a theme growing fast enough to show (module constants)."""
    return f"""
        WITH counts AS (
            SELECT th.channel_name, th.theme_id, th.label, th.keywords, th.size, th.first_seen, th.last_seen,
                   coalesce(sum(tr.data_points) FILTER (WHERE tr.day > ({today}) - 7 AND tr.day <= ({today})), 0)
                       ::INTEGER AS last_7_days,
                   coalesce(sum(tr.data_points)
                       FILTER (WHERE tr.day > ({today}) - 35 AND tr.day <= ({today}) - 7), 0)::INTEGER
                       AS previous_28_days
            FROM themes th LEFT JOIN theme_trends tr USING (channel_name, theme_id)
            WHERE th.status = 'active'
            GROUP BY ALL
        )
        SELECT *,
               CASE WHEN previous_28_days = 0 THEN NULL ELSE last_7_days / (previous_28_days / 4.0) - 1 END
                   AS growth,
               last_7_days >= {EMERGING_MIN_RECENT}
                   AND last_7_days >= {EMERGING_MIN_RATIO} * previous_28_days / 4.0 AS emerging
        FROM counts
    """


_UTC_TODAY = "(now() AT TIME ZONE 'UTC')::DATE"


@dataclass(frozen=True)
class View:
    """A view for analysts: created with the tables, documented in the README and as its `COMMENT`."""

    name: str
    description: str
    sql: str


#: The views an analyst reaches for first (replaced whenever the schema's fingerprint changes).
VIEWS: dict[str, View] = {
    v.name: v
    for v in (
        View(
            "data_points_wide",
            "Every column of `data_points` plus `fields`, a `MAP(VARCHAR, VARCHAR)` of the data point's "
            "`data_point_fields` keyed by origin and name (`fields['form.Rating']`, `fields['custom_data.user.id']`; "
            "`{}` when it has none): any field name works, no pivot to rebuild.",
            """
            SELECT dp.*, coalesce(f.fields, MAP {}::MAP(VARCHAR, VARCHAR)) AS fields
            FROM data_points dp LEFT JOIN (
                SELECT source_id, feedback_id, map_from_entries(list((origin || '.' || name, value))) AS fields
                FROM data_point_fields GROUP BY source_id, feedback_id
            ) f USING (source_id, feedback_id)
            """,
        ),
        View(
            "data_point_conversation",
            "The turns of every data point in order (`turn` 1, 2, …) with the data point's channel, source, "
            "project, `feedback_number`, `submitted_at` and `link`; ordered by `submitted_at`, data point and turn.",
            """
            SELECT dp.channel_name, dp.source_id, dp.source_name, dp.project_id, dp.project_name, dp.feedback_id,
                   dp.feedback_number, dp.submitted_at, dp.link, t.turn, t.label, t.text
            FROM data_point_turns t JOIN data_points dp USING (source_id, feedback_id)
            ORDER BY dp.submitted_at, dp.source_id, dp.feedback_id, t.turn
            """,
        ),
        View(
            "data_point_numbers",
            "`data_point_fields` with a typed value: the numeric fields with `number` as DOUBLE (the lossless "
            "text stays in `value`); the report's ratings and NPS.",
            """
            SELECT source_id, feedback_id, name, origin, value, TRY_CAST(value AS DOUBLE) AS number
            FROM data_point_fields WHERE value_type = 'number'
            """,
        ),
        View(
            "emerging_themes",
            "Growth of every active theme as of the current UTC day: data points in the last 7 days against the "
            "weekly average of the 28 before (`growth`, NULL when none before), and whether it is `emerging`.",
            growth_sql(_UTC_TODAY),
        ),
    )
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_sql() -> dict[tuple[str, str | None], str]:
    """`COMMENT ON` statement per (table or view, column or None): the README's text, in the database."""
    statements: dict[tuple[str, str | None], str] = {}
    for table in TABLES.values():
        statements[(table.name, None)] = f"COMMENT ON TABLE {table.name} IS {_quote(table.comment)};"
        for c in table.columns:
            statements[(table.name, c.name)] = f"COMMENT ON COLUMN {table.name}.{c.name} IS {_quote(c.description)};"
    for view in VIEWS.values():
        statements[(view.name, None)] = f"COMMENT ON VIEW {view.name} IS {_quote(view.description)};"
    return statements


def comments() -> dict[tuple[str, str | None], str]:
    """The comment text per (table or view, column or None), as `duckdb_tables()`/`duckdb_columns()` show it."""
    texts: dict[tuple[str, str | None], str] = {}
    for table in TABLES.values():
        texts[(table.name, None)] = table.comment
        texts.update({(table.name, c.name): c.description for c in table.columns})
    texts.update({(v.name, None): v.description for v in VIEWS.values()})
    return texts


#: Every table (CREATE IF NOT EXISTS: never touches an existing table's rows).
SCHEMA_SQL = "\n".join(t.ddl() for t in TABLES.values())
#: Views, replaced on every schema change (a view holds no rows).
VIEWS_SQL = "\n".join(f"CREATE OR REPLACE VIEW {v.name} AS {v.sql};" for v in VIEWS.values())
#: What `schema_version` records: a change to any table, key, comment or view changes it.
SCHEMA_FINGERPRINT = hashlib.sha256(
    "\n".join(
        [SCHEMA_SQL, VIEWS_SQL, *comment_sql().values(), *(i for t in TABLES.values() for i in t.index_ddl())]
    ).encode()
).hexdigest()[:16]


def markdown() -> str:
    """The README's table reference, column by column (kept in sync by a test)."""
    parts: list[str] = []
    for table in TABLES.values():
        parts.append(f"#### `{table.name}` — one row per {table.grain}\n\n{table.description}\n")
        parts.append("| column | type | meaning |\n|---|---|---|")
        for c in table.columns:
            parts.append(f"| `{c.name}` | {c.sql_type}{'' if c.nullable else ' NOT NULL'} | {c.description} |")
        keys = [f"primary key `({', '.join(table.primary_key)})`"] if table.primary_key else []
        keys += [f"unique `({', '.join(cols)})`" for cols in table.unique]
        if table.checked_key:
            keys.append(
                f"unique `({', '.join(table.checked_key)})` by the import (each unit replaced whole in one "
                "transaction), not by a constraint (see *Where we differ*)"
            )
        parts.append(f"\nConstraints: {'; '.join(keys)}.\n" if keys else "")
    parts.append("#### Views\n\n| view | what it shows |\n|---|---|")
    parts.extend(f"| `{v.name}` | {v.description} |" for v in VIEWS.values())
    parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown())
