"""Real materializations against the dev server over HTTP into real DuckDB files."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from usersnap_channels import jsonio
from usersnap_channels.definitions import build_definitions
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels.usersnap.mapping import DataPoint, map_item
from usersnap_channels.warehouse.connection import connect
from usersnap_channels_tests.conftest import add_source, run_import
from usersnap_channels_tests.helpers import query

NEVER_IMPORTED_KEYS = ("screen_recording", "assignee_id", "updated_at", "annotated_image_url")


def run_range(env: dict[str, str], instance: dg.DagsterInstance, first: date, last: date, **config: Any):
    return run_import(build_definitions(database=env["USERSNAP_CHANNELS_DB"]), instance, first, last, **config)


def truth(devserver: DevServer, workspace: str, first: date, last: date) -> dict[str, dict]:
    """The server's items of a workspace for [first, last] (UTC days), by feedback_id."""
    start = datetime.combine(first, time(0), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
    out: dict[str, dict] = {}
    for project in devserver.workspace(workspace).projects:
        for item in devserver.items(project["project_id"], start, end):
            out[item["feedback_id"]] = item
    return out


def test_a_window_across_projects_and_two_sources_equals_the_server(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    acme = add_source(db, devserver, "Acme", window="30d")
    globex = add_source(db, devserver, "Globex", window="7d")
    result = run_range(env, instance, window_start("30d", today), today)
    assert result.success

    for source, first in ((acme, window_start("30d", today)), (globex, window_start("7d", today))):
        expected = truth(devserver, source.source_name, first, today)
        rows = query(
            db,
            "SELECT feedback_id, channel_name, source_name, project_id, project_name, feedback_number, submitted_at, "
            "link, email, status, priority, tags, text, partition_date FROM data_points WHERE source_id = ?",
            [source.source_id],
        )
        assert len(rows) == len(expected) > 0
        names = {p["project_id"]: p["name"] for p in devserver.workspace(source.source_name).projects}
        for row in rows:
            item = expected[row[0]]
            dp = map_item(jsonio.loads(jsonio.dumps(item)))
            assert isinstance(dp, DataPoint)
            assert row[1:6] == (
                "Product feedback",
                source.source_name,
                item["project_id"],
                names[item["project_id"]],
                item["feedback_number"],
            )
            assert row[6] == dp.submitted_at
            assert row[7:11] == (item["public_link"], item.get("email"), item.get("status_type"), item.get("priority"))
            assert row[11] == [label["name"] for label in item.get("labels") or []]
            assert row[12] == dp.text
            assert row[13] == dp.submitted_at.date()
        # turns and fields equal the mapping, row for row
        turns = query(
            db,
            "SELECT feedback_id, turn, label, text FROM data_point_turns WHERE source_id = ? "
            "ORDER BY feedback_id, turn",
            [source.source_id],
        )
        expected_turns = sorted(
            (fid, t.turn, t.label, t.text) for fid, item in expected.items() for t in map_item(item).turns
        )
        assert turns == expected_turns
        fields = query(
            db,
            "SELECT feedback_id, name, value, value_type, origin FROM data_point_fields WHERE source_id = ?",
            [source.source_id],
        )
        expected_fields = [
            (fid, f.name, f.value, f.value_type, f.origin)
            for fid, item in expected.items()
            for f in map_item(item).fields
        ]
        assert sorted(fields) == sorted(expected_fields)
        raw = query(db, "SELECT feedback_id, item FROM raw_feedback WHERE source_id = ?", [source.source_id])
        assert {r[0] for r in raw} == set(expected)

    # one single-run step for the whole range: every partition in it is materialized by one run
    materialized = instance.get_materialized_partitions(dg.AssetKey("data_points"))
    assert window_start("30d", today).isoformat() in materialized and today.isoformat() in materialized


def test_rematerializing_is_idempotent(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    add_source(db, devserver, "Acme", window="7d")
    counts_sql = (
        "SELECT (SELECT count(*) FROM raw_feedback), (SELECT count(*) FROM data_points), "
        "(SELECT count(DISTINCT (source_id, feedback_id)) FROM data_points), (SELECT count(*) FROM data_point_turns), "
        "(SELECT count(*) FROM data_point_fields), (SELECT count(*) FROM rejected_items)"
    )
    assert run_range(env, instance, window_start("7d", today), today).success
    first = query(db, counts_sql)
    content_sql = "SELECT feedback_id, text, tags, email FROM data_points ORDER BY feedback_id"
    first_content = query(db, content_sql)
    for _ in range(2):
        assert run_range(env, instance, window_start("7d", today), today).success
    # and a single day inside the range
    assert run_range(env, instance, today - timedelta(days=3), today - timedelta(days=3)).success
    assert query(db, counts_sql) == first
    assert first[0][1] == first[0][2], "(source_id, feedback_id) must be unique"
    assert query(db, content_sql) == first_content


def test_day_boundaries_land_in_the_right_partition(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    day = today - timedelta(days=2)
    project = devserver.workspace("Acme").projects[0]
    midnight = devserver.add_feedback(project["project_id"], created_at=datetime.combine(day, time(0), tzinfo=UTC))
    last_us = devserver.add_feedback(
        project["project_id"], created_at=datetime.combine(day, time(23, 59, 59, 999999), tzinfo=UTC)
    )
    add_source(db, devserver, "Acme", window="7d", projects=[project["name"]])
    assert run_range(env, instance, day, day).success
    rows = dict(query(db, "SELECT feedback_id, partition_date FROM data_points"))
    assert rows[midnight["feedback_id"]] == day
    assert rows[last_us["feedback_id"]] == day
    submitted = dict(query(db, "SELECT feedback_id, submitted_at FROM data_points"))
    assert submitted[last_us["feedback_id"]] == datetime.combine(day, time(23, 59, 59, 999999), tzinfo=UTC)
    # the next day's partition does not hold them
    assert run_range(env, instance, day + timedelta(days=1), day + timedelta(days=1)).success
    rows = query(
        db,
        "SELECT partition_date FROM data_points WHERE feedback_id IN (?, ?)",
        [midnight["feedback_id"], last_us["feedback_id"]],
    )
    assert [r[0] for r in rows] == [day, day]


def test_malformed_items_are_recorded_and_the_partition_succeeds(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    project = devserver.workspace("Acme").projects[0]
    at = datetime.combine(today - timedelta(days=1), time(12), tzinfo=UTC)
    bad = [
        devserver.add_malformed(project["project_id"], kind, created_at=at)
        for kind in ("no_feedback_id", "bad_created_at", "wrong_types")
    ]
    add_source(db, devserver, "Acme", window="7d", projects=[project["name"]])
    assert run_range(env, instance, at.date(), at.date()).success
    rejected = query(db, "SELECT feedback_id, reason, payload, partition_date FROM rejected_items")
    assert len(rejected) == 3
    assert all(r[1] and r[2] and r[3] == at.date() for r in rejected)
    good = len(
        devserver.items(
            project["project_id"],
            *[
                datetime.combine(at.date(), time(0), tzinfo=UTC),
                datetime.combine(at.date() + timedelta(days=1), time(0), tzinfo=UTC),
            ],
        )
    )
    dps = query(db, "SELECT count(*) FROM data_points")[0][0]
    assert dps + len(rejected) == good
    assert {r[0] for r in rejected if r[0]} <= {b.get("feedback_id") for b in bad}


def test_never_imported_fields_are_nowhere_in_the_database(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    project = devserver.workspace("Acme").projects[0]
    item = devserver.add_feedback(
        project["project_id"],
        created_at=datetime.combine(today, time(1), tzinfo=UTC),
        assignee_id="11111111-2222-3333-4444-555555555555",
        screenshot={
            "annotated_image_url": "https://cdn.example/secret-shot.png",
            "comments": [{"label": "1", "comment": "Button is cut off"}],
        },
        screen_recording={"file_resource_url": "https://cdn.example/rec.webm", "mime_type": "video/webm"},
    )
    devserver.add_malformed(
        project["project_id"], "wrong_types", created_at=datetime.combine(today, time(2), tzinfo=UTC)
    )
    add_source(db, devserver, "Acme", window="7d")
    assert run_range(env, instance, today - timedelta(days=7), today).success
    con = connect(db)
    try:
        path = db
        con.execute("CHECKPOINT")
    finally:
        con.close()
    blob = Path(path).read_bytes()  # the whole file, every table
    for needle in (b"secret-shot.png", b"cdn.example/rec.webm", b"11111111-2222-3333-4444-555555555555"):
        assert needle not in blob
    for key in NEVER_IMPORTED_KEYS:
        hits = query(db, "SELECT count(*) FROM raw_feedback WHERE json_keys(item)::VARCHAR LIKE ?", [f"%{key}%"])
        assert hits == [(0,)], key
        assert query(db, "SELECT count(*) FROM rejected_items WHERE payload LIKE ?", [f'%"{key}"%']) == [(0,)]
    turns = query(db, "SELECT label, text FROM data_point_turns WHERE feedback_id = ?", [item["feedback_id"]])
    assert ("Screenshot comment", "Button is cut off") in turns


def test_numbers_keep_every_digit(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    project = devserver.workspace("Acme").projects[0]
    item = devserver.add_feedback(
        project["project_id"],
        created_at=datetime.combine(today, time(3), tzinfo=UTC),
        custom_data={
            "big": 12345678901234567,
            "precise": Decimal("0.1000000000000000055511151231257827"),
            "user": {"id": 7},
        },
    )
    add_source(db, devserver, "Acme", window="7d", projects=[project["name"]])
    assert run_range(env, instance, today, today).success
    fields = dict(
        query(
            db,
            "SELECT name, value FROM data_point_fields WHERE feedback_id = ? AND origin = 'custom_data'",
            [item["feedback_id"]],
        )
    )
    assert fields["big"] == "12345678901234567"
    assert fields["precise"] == "0.1000000000000000055511151231257827"
    assert fields["user.id"] == "7"
    raw = query(db, "SELECT item FROM raw_feedback WHERE feedback_id = ?", [item["feedback_id"]])[0][0]
    assert "12345678901234567" in raw and "0.1000000000000000055511151231257827" in raw


def test_a_disconnected_source_is_not_fetched_and_keeps_its_rows(env, instance, devserver: DevServer) -> None:
    from usersnap_channels.warehouse.registry import set_disconnected

    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    acme = add_source(db, devserver, "Acme", window="7d")
    assert run_range(env, instance, today - timedelta(days=7), today).success
    before = query(db, "SELECT count(*) FROM data_points")[0][0]
    con = connect(db)
    set_disconnected(con, acme)
    con.close()
    devserver.clear_log()
    devserver.add_feedback(devserver.workspace("Acme").projects[0]["project_id"])
    assert run_range(env, instance, today - timedelta(days=7), today).success
    assert query(db, "SELECT count(*) FROM data_points")[0][0] == before
    assert devserver.request_log == []


@pytest.mark.parametrize("only_missing", [True, False])
def test_only_missing_skips_imported_days_but_refreshes_today(
    env, instance, devserver: DevServer, only_missing: bool
) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    add_source(db, devserver, "Acme", window="7d")
    assert run_range(env, instance, today - timedelta(days=7), today).success
    new = devserver.add_feedback(devserver.workspace("Acme").projects[0]["project_id"])
    devserver.clear_log()
    assert run_range(env, instance, today - timedelta(days=7), today, only_missing=only_missing).success
    fetched_calls = [r for r in devserver.request_log if r.path.endswith("/filter")]
    projects = len(devserver.workspace("Acme").projects)
    assert len(fetched_calls) == (2 * projects if only_missing else 8 * projects)
    assert query(db, "SELECT count(*) FROM data_points WHERE feedback_id = ?", [new["feedback_id"]]) == [(1,)]
