"""The `theme_report` asset: downstream of `theme_trends`, it writes one report per channel beside the DuckDB
file and puts the paths and a preview of the top themes in its metadata."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.resources import channels_duckdb
from usersnap_channels.defs.themes.report import theme_report
from usersnap_channels.partitions import utc_today
from usersnap_channels.report import sample
from usersnap_channels.warehouse.connection import connect
from usersnap_channels_tests.report.conftest import EMAIL_ANYWHERE


def test_the_asset_follows_theme_trends_and_writes_each_channels_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, instance: dg.DagsterInstance
) -> None:
    # (with a live instance: resolving definitions can otherwise reach one an earlier test disposed of)
    monkeypatch.delenv("USERSNAP_CHANNELS_REPORT_DIR", raising=False)
    monkeypatch.setenv("USERSNAP_CHANNELS_THEMES", "on")
    db = tmp_path / "data" / "channels.duckdb"
    db.parent.mkdir()
    con = connect(str(db))
    try:
        sample.build(con, sample.SampleSpec(channel="Product feedback", data_points=600, themes=5), utc_today())
    finally:
        con.close()
    graph = build_definitions(database=str(db)).resolve_asset_graph()
    assert graph.get(dg.AssetKey("theme_report")).parent_keys == {dg.AssetKey("theme_trends")}

    result = dg.materialize([theme_report], resources={"duckdb": channels_duckdb(str(db))}, instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("theme_report")[0].metadata
    path = tmp_path / "data" / "reports" / "product-feedback.html"
    assert metadata["path"].value == str(path) and path.exists()
    preview = metadata["top_themes"].value
    assert "### Product feedback" in preview and "| theme | label | size |" in preview
    assert EMAIL_ANYWHERE.findall(path.read_text()) == []
    opened = request.getfixturevalue("open_report")(path)  # the browser starts after the in-process run
    assert opened.page.locator("#themes tbody tr").count() == 5 and opened.console_errors == []
