"""Small helpers shared by the suites (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from usersnap_channels.warehouse.connection import connect


def query(db: str, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Rows of one query on the DuckDB file `db`, on a connection opened and closed for it."""
    con = connect(db)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


#: Every asset of the definitions, as `dg list defs` and the resolved asset graph name them.
ASSET_KEYS = {
    "usersnap_projects",
    "raw_feedback",
    "data_points",
    "data_point_themes",
    "themes",
    "theme_trends",
    "theme_report",
}
