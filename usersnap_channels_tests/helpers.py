"""Small helpers shared by the suites (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

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


@contextmanager
def instance_at(home: str | Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance in `home`, loaded as Dagster's own processes load it: with DAGSTER_HOME set to it."""
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous
