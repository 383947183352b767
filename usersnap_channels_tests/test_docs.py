"""The README documents every DuckDB table column by column, and the CLI commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

from usersnap_channels.cli.app import app
from usersnap_channels.warehouse import schema
from usersnap_channels.warehouse.connection import connect

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_table_reference_is_generated_from_the_schema() -> None:
    block = re.search(r"<!-- tables:start -->\n(.*)<!-- tables:end -->", README, re.S)
    assert block is not None
    assert block.group(1).strip() == schema.markdown().strip(), "run: python -m usersnap_channels.warehouse.schema"


def test_schema_module_matches_the_database(tmp_path: Path) -> None:
    con = connect(str(tmp_path / "x.duckdb"))
    try:
        for table in schema.TABLES.values():
            columns = [r[0] for r in con.execute(f"DESCRIBE {table.name}").fetchall()]
            assert columns == table.column_names
    finally:
        con.close()


def test_readme_names_every_cli_command() -> None:
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert f"`{name}" in README, name
