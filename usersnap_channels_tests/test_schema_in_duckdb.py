"""The DuckDB file explains itself: comments, keys and views, read back from real files, old ones included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from usersnap_channels.warehouse import schema
from usersnap_channels.warehouse.connection import connect, ensure_schema

_COMMENTS_SQL = """
    SELECT table_name, NULL, comment FROM duckdb_tables() WHERE database_name = current_database()
    UNION ALL SELECT view_name, NULL, comment FROM duckdb_views() WHERE database_name = current_database()
        AND NOT internal
    UNION ALL SELECT table_name, column_name, comment FROM duckdb_columns() WHERE database_name = current_database()
        AND table_name IN (SELECT table_name FROM duckdb_tables())
"""


def _comments(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str | None], str | None]:
    return {(r[0], r[1]): r[2] for r in con.execute(_COMMENTS_SQL).fetchall()}


def _primary_keys(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return {r[0]: list(r[1]) for r in rows}


def _old_release_file(path: Path) -> None:
    """A file as the previous release made it: plain tables, no keys, no comments, one old view, and rows."""
    con = duckdb.connect(str(path))
    for table in schema.TABLES.values():
        if table.name == "schema_version":
            continue
        cols = ", ".join(f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns)
        con.execute(f"CREATE TABLE {table.name} ({cols})")
    con.execute("CREATE VIEW data_point_numbers AS SELECT source_id, feedback_id, name, value FROM data_point_fields")
    _fill(con)
    con.close()


def _fill(con: Any, *, duplicate: bool = False) -> None:
    """Two data points with turns and fields (a field name shared by form and custom_data, quotes, dots)."""
    con.execute("INSERT INTO channels VALUES ('Product', now())")
    con.execute(
        "INSERT INTO sources VALUES ('src_1', 'Product', 'Acme', 'A_ID', 'A_SECRET', '7d', DATE '2026-01-01', "
        "'connected', now(), NULL, NULL, NULL)"
    )
    if duplicate:
        con.execute("INSERT INTO channels VALUES ('Product', now())")
    rows = [("fb1", "2026-01-02 10:00:00+00"), ("fb2", "2026-01-01 09:00:00+00")]
    for fid, at in rows:
        con.execute(
            "INSERT INTO data_points VALUES ('Product', 'src_1', 'Acme', 'p1', 'Web', ?, 7, ?::TIMESTAMPTZ, "
            "'https://u/' || ?, NULL, 'open', NULL, [], 'hi', now(), ?::TIMESTAMPTZ::DATE)",
            [fid, at, fid, at],
        )
    con.execute(
        "INSERT INTO data_point_turns VALUES ('src_1', 'fb1', 2, 'Screenshot comment', 'second'), "
        "('src_1', 'fb1', 1, 'What happened?', 'first'), ('src_1', 'fb2', 1, NULL, 'only')"
    )
    con.execute(
        "INSERT INTO data_point_fields VALUES ('src_1', 'fb1', 'plan', 'pro', 'text', 'form'), "
        "('src_1', 'fb1', 'plan', 'free', 'text', 'custom_data'), "
        "('src_1', 'fb1', 'user.id', '12345678901234567890', 'number', 'custom_data'), "
        "('src_1', 'fb1', 'It''s \"odd\"', 'x', 'text', 'form')"
    )


def test_every_table_column_and_view_carries_the_readme_text_as_its_comment(tmp_path: Path) -> None:
    con = connect(str(tmp_path / "x.duckdb"))
    try:
        got = _comments(con)
    finally:
        con.close()
    wanted = schema.comments()
    assert {k: got.get(k) for k in wanted} == wanted
    assert got[("data_points", "feedback_id")] == "Usersnap's id of the feedback item (a UUID)."
    assert got[("data_points", None)].startswith("One row per data point. ")
    assert set(schema.VIEWS) >= {"data_points_wide", "data_point_conversation"}


def test_a_file_of_the_previous_release_gains_comments_keys_and_views_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _old_release_file(path)
    counts_sql = "SELECT (SELECT count(*) FROM data_points), (SELECT count(*) FROM data_point_turns), " + (
        "(SELECT count(*) FROM data_point_fields), (SELECT count(*) FROM sources), (SELECT count(*) FROM channels)"
    )
    with duckdb.connect(str(path)) as con:
        before = con.execute(counts_sql).fetchall()
        assert _primary_keys(con) == {}
    con = connect(str(path))
    try:
        assert con.execute(counts_sql).fetchall() == before == [(2, 3, 4, 1, 1)]
        assert {k: v for k, v in _comments(con).items() if k in schema.comments()} == schema.comments()
        assert _primary_keys(con) == {t.name: list(t.primary_key) for t in schema.TABLES.values() if t.primary_key}
        assert con.execute("SELECT fingerprint FROM schema_version").fetchall() == [(schema.SCHEMA_FINGERPRINT,)]
        # the old view was replaced by today's (it has `number` now)
        assert "number" in [d[0] for d in con.execute("SELECT * FROM data_point_numbers").description]
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO channels SELECT * FROM channels")
        with pytest.raises(duckdb.ConstraintException):
            con.execute(
                "INSERT INTO sources SELECT 'src_2', * EXCLUDE (source_id) FROM sources WHERE source_id = 'src_1'"
            )
    finally:
        con.close()


def test_a_table_whose_rows_break_its_key_keeps_them_and_is_tried_again(tmp_path: Path) -> None:
    path = tmp_path / "dupes.duckdb"
    with duckdb.connect(str(path)) as con:
        for table in schema.TABLES.values():
            cols = ", ".join(f"{c.name} {c.sql_type}" for c in table.columns)
            con.execute(f"CREATE TABLE {table.name} ({cols})")
        _fill(con, duplicate=True)
    con = connect(str(path))
    try:
        assert con.execute("SELECT count(*) FROM channels").fetchone()[0] == 2
        assert "channels" not in _primary_keys(con)
        assert "sources" in _primary_keys(con)
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0  # retried on the next open
        con.execute("DELETE FROM channels WHERE rowid = (SELECT max(rowid) FROM channels)")
        ensure_schema(con)
        assert "channels" in _primary_keys(con)
        assert con.execute("SELECT fingerprint FROM schema_version").fetchall() == [(schema.SCHEMA_FINGERPRINT,)]
    finally:
        con.close()


class _Counting:
    """A connection that counts the statements run through it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.statements = con, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return self.con.execute(sql, *args)


def test_an_up_to_date_file_costs_one_lookup(tmp_path: Path) -> None:
    con = connect(str(tmp_path / "x.duckdb"))
    try:
        counting = _Counting(con)
        ensure_schema(counting)  # type: ignore[arg-type]
        assert counting.statements == ["SELECT max(fingerprint) FROM schema_version"]
        con.execute("DELETE FROM schema_version")  # as if the schema module had changed
        ensure_schema(counting)  # type: ignore[arg-type]
        assert len(counting.statements) > 2
    finally:
        con.close()


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A new file, brought up to date, with `_fill`'s two data points."""
    con = connect(str(tmp_path / "x.duckdb"))
    try:
        _fill(con)
        yield con
    finally:
        con.close()


def test_data_points_wide_equals_a_direct_query(filled: duckdb.DuckDBPyConnection) -> None:
    con = filled
    wide = con.execute("SELECT feedback_id, fields FROM data_points_wide ORDER BY feedback_id").fetchall()
    direct = con.execute(
        "SELECT feedback_id, origin || '.' || name, value FROM data_point_fields ORDER BY ALL"
    ).fetchall()
    assert wide[0][0] == "fb1" and wide[0][1] == {k: v for f, k, v in direct if f == "fb1"}
    assert wide[0][1]["form.plan"] == "pro" and wide[0][1]["custom_data.plan"] == "free"
    assert wide[1] == ("fb2", {})
    same = con.execute(
        "SELECT count(*) FROM data_points_wide w JOIN data_points d USING (source_id, feedback_id) "
        "WHERE w.text = d.text AND w.submitted_at = d.submitted_at"
    ).fetchone()[0]
    assert same == con.execute("SELECT count(*) FROM data_points").fetchone()[0] == 2
    assert con.execute(
        "SELECT fields['custom_data.user.id'] FROM data_points_wide WHERE feedback_id = 'fb1'"
    ).fetchone() == ("12345678901234567890",)


def test_data_point_conversation_lists_turns_in_order_with_their_data_point(filled: duckdb.DuckDBPyConnection) -> None:
    con = filled
    view = con.execute(
        "SELECT feedback_id, turn, text, channel_name, project_name, link, submitted_at FROM data_point_conversation"
    ).fetchall()
    direct = con.execute(
        "SELECT t.feedback_id, t.turn, t.text, d.channel_name, d.project_name, d.link, d.submitted_at "
        "FROM data_point_turns t JOIN data_points d USING (source_id, feedback_id) "
        "ORDER BY d.submitted_at, t.turn"
    ).fetchall()
    assert view == direct
    assert [(r[0], r[1]) for r in view] == [("fb2", 1), ("fb1", 1), ("fb1", 2)]


def test_an_up_to_date_file_leaves_its_connection_free_for_arrow_hand_off(tmp_path: Path) -> None:
    """ensure_schema's look-up must not leave a half-read result: DuckDB 2 then refuses `register`."""
    import pyarrow as pa

    db = str(tmp_path / "x.duckdb")
    connect(db).close()  # created and brought up to date
    con = connect(db)  # up to date: only the look-up runs
    try:
        con.register("_rows", pa.table({"a": [1, 2]}))
        assert con.execute("SELECT sum(a) FROM _rows").fetchall() == [(3,)]
    finally:
        con.close()
