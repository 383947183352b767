"""Themes through the real pipeline: dev server over HTTP, real Dagster runs, real DuckDB files, the CLI as a
subprocess. Every assertion is checked against a direct computation from the tables."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np

from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.provenance import DATABASE_KEY
from usersnap_channels.defs.themes.assets import EMBEDDED_TAG, WORKER_RSS_TAG
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import partition_key, utc_today, window_start
from usersnap_channels.themes.service import ASSIGN_THRESHOLD
from usersnap_channels_tests.conftest import add_source, run_cli, run_import
from usersnap_channels_tests.helpers import query

DATA_POINTS = dg.AssetKey("data_point_themes")
THEME_TABLES = (
    "data_point_embeddings",
    "themes",
    "data_point_themes",
    "theme_trends",
    "theme_labels",
    "theme_events",
    "theme_recomputes",
)


def import_days(env: dict[str, str], instance: dg.DagsterInstance, first: date, last: date):
    result = run_import(build_definitions(database=env["USERSNAP_CHANNELS_DB"]), instance, first, last)
    assert result.success
    return result


def trends_equal_direct_counts(db: str) -> None:
    direct = query(
        db,
        "SELECT d.channel_name, t.theme_id, (d.submitted_at AT TIME ZONE 'UTC')::DATE, count(*) "
        "FROM data_point_themes t JOIN data_points d USING (source_id, feedback_id) GROUP BY ALL ORDER BY ALL",
    )
    assert query(db, "SELECT * FROM theme_trends ORDER BY ALL") == direct


def test_an_import_embeds_themes_and_trends_its_days(themes_on, instance, devserver: DevServer) -> None:
    db = themes_on["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    add_source(db, devserver, "Acme", window="30d")
    first = window_start("30d", today)
    result = import_days(themes_on, instance, first, today)

    with_text = query(db, "SELECT count(*) FROM data_points WHERE trim(text) <> ''")[0][0]
    assert query(db, "SELECT count(DISTINCT (source_id, feedback_id)) FROM data_point_embeddings")[0][0] == with_text
    assert (
        query(
            db,
            "SELECT count(*) FROM data_point_embeddings e JOIN data_points d USING (source_id, feedback_id) "
            "WHERE trim(d.text) = ''",
        )[0][0]
        == 0
    ), "empty texts are not embedded"
    themes = query(db, "SELECT theme_id, label, keywords, size FROM themes WHERE status = 'active'")
    assert len(themes) >= 5 and all(label and keywords for _, label, keywords, _ in themes)
    themed = query(db, "SELECT count(*), count(DISTINCT (source_id, feedback_id)) FROM data_point_themes")[0]
    assert themed[0] == themed[1] >= 0.9 * with_text, "one row per themed data point, few unassigned"
    assert sum(t[3] for t in themes) == themed[0]
    trends_equal_direct_counts(db)
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert any(
        e.event_specific_data.check_name == "theme_trends_sum_to_themed_data_points" and e.event_specific_data.passed
        for e in checks
    )

    # per-partition metadata is that day's own count, not the run's total
    per_day = dict(
        query(
            db,
            "SELECT partition_date::VARCHAR, count(*) FROM data_point_themes "
            "JOIN data_points USING (source_id, feedback_id) GROUP BY 1",
        )
    )
    for day in (first, today - timedelta(days=3), today):
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=DATA_POINTS, asset_partitions=[partition_key(day)]), limit=1
        ).records[0]
        metadata = record.asset_materialization.metadata
        assert metadata["dagster/partition_row_count"].value == per_day.get(partition_key(day), 0)
        empty = query(db, "SELECT count(*) FROM data_points WHERE partition_date = ? AND trim(text) = ''", [day])
        assert metadata["empty_texts"].value == empty[0][0]
        assert metadata[DATABASE_KEY].value == os.path.abspath(db)
    # the step's run-level figures are on the run
    tags = instance.get_run_by_id(result.run_id).tags
    assert int(tags[EMBEDDED_TAG]) == with_text and 100 < int(tags[WORKER_RSS_TAG]) < 2000


def test_new_feedback_joins_its_nearest_theme_in_the_run_that_imports_it(
    themes_on, instance, devserver: DevServer
) -> None:
    db = themes_on["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    source = add_source(db, devserver, "Acme", window="30d")
    import_days(themes_on, instance, window_start("30d", today), today - timedelta(days=1))
    recomputes = query(db, "SELECT count(*) FROM theme_recomputes")[0][0]
    assert recomputes == 1

    project = source.projects[0].project_id
    at = datetime.combine(today, time(0, 30), tzinfo=UTC)
    added = [devserver.add_feedback(project, created_at=at + timedelta(minutes=i))["feedback_id"] for i in range(8)]
    import_days(themes_on, instance, today, today)
    assert query(db, "SELECT count(*) FROM theme_recomputes")[0][0] == recomputes, "no full recompute per sync"

    centroids = query(db, "SELECT theme_id, centroid FROM themes WHERE status = 'active' ORDER BY theme_id")
    ids, matrix = [c[0] for c in centroids], np.array([c[1] for c in centroids], dtype=np.float32)
    vectors = dict(
        query(db, "SELECT feedback_id, vector FROM data_point_embeddings WHERE list_contains(?, feedback_id)", [added])
    )
    assigned = dict(
        query(db, "SELECT feedback_id, theme_id FROM data_point_themes WHERE list_contains(?, feedback_id)", [added])
    )
    for feedback_id, vector in vectors.items():
        sims = matrix @ np.asarray(vector, dtype=np.float32)
        expected = ids[int(np.argmax(sims))] if sims.max() >= ASSIGN_THRESHOLD else None
        assert assigned.get(feedback_id) == expected
    trends_equal_direct_counts(db)


def test_recompute_keeps_ids_and_names_and_delete_updates_everything(themes_on, instance, devserver: DevServer) -> None:
    db = themes_on["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    acme = add_source(db, devserver, "Acme", window="7d")
    globex = add_source(db, devserver, "Globex", window="7d")
    import_days(themes_on, instance, window_start("7d", today), today)
    before = dict(query(db, "SELECT feedback_id, theme_id FROM data_point_themes"))
    theme_id = query(db, "SELECT theme_id FROM themes WHERE status = 'active' ORDER BY size DESC LIMIT 1")[0][0]

    renamed = run_cli("themes", "rename", str(theme_id), "Slow pages", "--channel", "Product feedback", env=themes_on)
    assert renamed.returncode == 0, renamed.stderr
    shown = run_cli("themes", "--channel", "Product feedback", env=themes_on)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Slow pages" in shown.stdout and "7-day growth" in shown.stdout and "Traceback" not in shown.stderr
    after = dict(query(db, "SELECT feedback_id, theme_id FROM data_point_themes"))
    kept = sum(after.get(k) == v for k, v in before.items()) / len(before)
    assert kept >= 0.9, f"a recompute on the same data kept only {kept:.0%} of the theme ids"
    assert query(db, "SELECT label FROM themes WHERE theme_id = ?", [theme_id]) == [("Slow pages",)]
    assert query(db, "SELECT count(*) FROM theme_recomputes WHERE reason = 'manual'")[0][0] == 1

    found = run_cli("search", "the page is slow to load", "--limit", "3", env=themes_on)
    assert found.returncode == 0 and found.stdout.count("https://app.usersnap.com/l/feedback/") == 3, found.stdout

    assert (
        run_cli("disconnect", "--channel", "Product feedback", "--source", "Globex", "--yes", env=themes_on).returncode
        == 0
    )
    kept_rows = query(db, "SELECT count(*) FROM data_point_themes WHERE source_id = ?", [globex.source_id])[0][0]
    assert kept_rows > 0, "disconnect keeps the source's themes"
    assert (
        run_cli("delete", "--channel", "Product feedback", "--source", "Acme", "--yes", env=themes_on).returncode == 0
    )
    for table in ("data_point_embeddings", "data_point_themes"):
        assert query(db, f"SELECT count(*) FROM {table} WHERE source_id = ?", [acme.source_id]) == [(0,)]
    assert query(db, "SELECT sum(size) FROM themes WHERE status = 'active'")[0][0] == kept_rows
    trends_equal_direct_counts(db)


def test_a_database_from_before_themes_gains_them_on_the_next_sync(env, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    add_source(db, devserver, "Acme", window="7d")
    assert run_cli("sync", env=env).returncode == 0  # themes off: the tables of the import only
    report = Path(db).parent / "reports" / "product-feedback.html"
    assert not report.exists()
    # the re-sync re-imports the last days (their `imported_at` moves): every other column stays
    stable = "SELECT * EXCLUDE (imported_at) FROM data_points ORDER BY ALL"
    rows = query(db, stable)
    con = duckdb.connect(db)  # a plain connection: ours would create the tables again
    con.execute("DROP VIEW emerging_themes")
    con.execute("DROP TABLE schema_version")  # the file of a release before themes had no schema version either
    for table in THEME_TABLES:
        con.execute(f"DROP TABLE {table}")
    con.close()
    synced = run_cli("sync", env={**env, "USERSNAP_CHANNELS_THEMES": "on"})
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert query(db, stable) == rows
    assert query(db, "SELECT count(*) FROM themes")[0][0] > 0
    assert query(db, "SELECT count(*) FROM emerging_themes")[0][0] > 0
    # a plain sync (no daemon) leaves the channel's report current, beside the database
    assert "Product feedback" in report.read_text()
