"""Each of an import's DuckDB connections closes under the checkpoint cap: the checkpoint that closes a
batch's connection merges row groups, and under the pipeline's wider limit that merge was the import's
memory peak. The cap only ever lowers a limit: a deployment that set a tighter one keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from usersnap_channels.devserver import DevServer
from usersnap_channels.ingest.importer import import_units
from usersnap_channels.ingest.plan import plan_units
from usersnap_channels.partitions import utc_today
from usersnap_channels.usersnap.client import ClientSpec
from usersnap_channels.warehouse.connection import CHECKPOINT_MEMORY_LIMIT, cap_memory, ensure_schema
from usersnap_channels.warehouse.registry import Source
from usersnap_channels_tests.conftest import add_source
from usersnap_channels_tests.helpers import query


def _limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT parse_formatted_bytes(current_setting('memory_limit'))").fetchall()[0][0]


def _bytes(size: str) -> int:
    return duckdb.execute("SELECT parse_formatted_bytes(?)", [size]).fetchall()[0][0]


@pytest.mark.parametrize(("configured", "expected"), [("64MB", CHECKPOINT_MEMORY_LIMIT), ("16MB", "16MB")])
def test_the_cap_lowers_a_wider_limit_and_keeps_a_tighter_one(tmp_path: Path, configured: str, expected: str) -> None:
    con = duckdb.connect(str(tmp_path / "cap.duckdb"), config={"memory_limit": configured})
    try:
        cap_memory(con, CHECKPOINT_MEMORY_LIMIT)
        # DuckDB rounds a limit it is given to its own units; compare within a megabyte
        assert abs(_limit_bytes(con) - _bytes(expected)) < 2**20
    finally:
        con.close()


def test_every_connection_of_an_import_closes_under_the_cap(env, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    source = add_source(db, devserver, "Acme", window="30d", projects=["Web App"])
    units = plan_units([source], today - timedelta(days=20), today, today=today)
    seen: list[int] = []

    @contextmanager
    def pipeline_connection() -> Iterator[duckdb.DuckDBPyConnection]:
        """As the pipeline's resource opens the file (its 64 MB limit); notes the limit each use closes with."""
        con = duckdb.connect(db, config={"memory_limit": "64MB"})
        ensure_schema(con)
        try:
            yield con
            seen.append(_limit_bytes(con))
        finally:
            con.close()

    def spec(s: Source) -> ClientSpec:
        return ClientSpec(devserver.base_url, s.jwt_id_env, s.jwt_secret_env)

    report = import_units(
        units, [source], client_spec=spec, connection=pipeline_connection, workers=2, flush_items=10, processes=False
    )

    assert not report.failed, report.failure_summary()
    assert report.units_written == len(units) == 21
    held = query(db, "SELECT count(*) FROM data_points")[0][0]
    assert held == report.data_points > 0
    # several batches and the status write, every one under the cap
    assert len(seen) >= 3
    assert max(seen) <= _bytes(CHECKPOINT_MEMORY_LIMIT)
