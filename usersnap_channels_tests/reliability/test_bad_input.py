"""Bad and hostile input end to end: over real HTTP, through a real import, into DuckDB and back.

The mapping's own property tests live in test_mapping_properties.py; here every item goes the whole way
(server JSON → client → mapping → Arrow → one DuckDB transaction) and must come out as exactly one data
point or exactly one `rejected_items` row with a reason, with hostile strings unchanged to the byte.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usersnap_channels import jsonio
from usersnap_channels.devserver import DevServer
from usersnap_channels.devserver.data import MALFORMED_KINDS
from usersnap_channels.ingest.rows import FeedbackBatch, write_batch
from usersnap_channels.partitions import utc_today
from usersnap_channels.usersnap.mapping import DataPoint, map_item
from usersnap_channels.warehouse.connection import ensure_schema
from usersnap_channels.warehouse.feedback import Unit
from usersnap_channels_tests.conftest import add_source, run_cli
from usersnap_channels_tests.helpers import query
from usersnap_channels_tests.reliability.test_faults import day_range, failure_text, fast_definitions, run_import
from usersnap_channels_tests.usersnap.test_mapping_properties import TOP_LEVEL_KEYS, small_junk_json, valid_items

ONE_MB = "€" * 350_000 + "x" * 2_000  # > 1 MB of UTF-8
HOSTILE: dict[str, str] = {
    "sql": "Robert'); DROP TABLE data_points; --",
    "quotes": 'She said "it\'s broken" \\ and left a back\\slash \'\' ""',
    "nul": "NUL\x00inside\x00",
    "only_nul": "\x00",
    "huge": ONE_MB,
    "unicode": "emoji 👍🏽, RTL \u202eolleh\u202c, ZWJ 👩\u200d💻, combining e\u0301, 中文, \u2028\u2029",
    "controls": "line\r\nbreaks\n\n\ttabs \x1b[31mred\x1b[0m \x7f",
    "placeholders": "%s %d {0} $1 ? :name %_ LIKE",
    "markup": "<script>alert(1)</script> &amp; ]]> -->",
    "json_like": '{"feedback_id": "x", "status": true}',
    "bom": "\ufeffBOM, noncharacter \uffff, private \ue000",
    "padded": "   keep my spaces   ",
}
#: JSON escapes no Python str can carry into DuckDB: lone and reversed surrogates (rejected with a reason),
#: and a proper surrogate pair (an emoji, which must arrive as that emoji).
LONE_SURROGATES = {"high": "\\ud800", "low": "\\udfff", "reversed": "\\ude00\\ud83d"}
PAIR_ESCAPE, PAIR_TEXT = "\\ud83d\\ude00", "😀"
PLACEHOLDER = "@@ESCAPE-GOES-HERE@@"


def text_input(text: str, label: str = "What's on your mind?") -> list[dict[str, Any]]:
    return [{"order": 1, "label": label, "boolean_value": None, "text_value": text, "value": None}]


def serve_escape(devserver: DevServer, project_id: str, at: datetime, escape: str) -> dict[str, Any]:
    """An item whose text, on the wire, is the JSON escape `escape` (say a lone surrogate `\\ud800`).

    Python cannot hold a lone surrogate in UTF-8, so the dev server would not serve one: the item is added
    with a placeholder and its cached wire bytes are rewritten (the HTTP path is unchanged).
    """
    item = devserver.add_feedback(project_id, created_at=at, ordered_inputs=text_input(PLACEHOLDER), screenshot=None)
    record = devserver._by_sid[item["feedback_id"]]
    record._raw = record.raw.replace(PLACEHOLDER.encode(), escape.encode())
    return item


def test_a_day_of_malformed_and_hostile_items_succeeds_and_accounts_for_every_item(
    env, instance, devserver: DevServer
) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    day = utc_today() - timedelta(days=1)
    project = devserver.workspace("Acme").projects[0]
    pid = project["project_id"]
    at = iter(datetime.combine(day, time(1), tzinfo=UTC) + timedelta(minutes=7 * n) for n in range(200))
    malformed = [devserver.add_malformed(pid, kind, created_at=next(at)) for kind in MALFORMED_KINDS]
    hostile: dict[str, dict[str, Any]] = {}
    for name, text in HOSTILE.items():
        hostile[name] = devserver.add_feedback(
            pid,
            created_at=next(at),
            ordered_inputs=text_input(text, label=f"label {text[:40]}"),
            email=f"{text[:30]}@example.com",
            labels=[{"company_label_id": 1, "identifier": "x", "name": text[:200], "color": "#fff"}],
            custom_data={"note": text, f"key {text[:20]}": {"nested": text[:50]}},
            screenshot={"annotated_image_url": "https://img.example/x.png", "comments": [{"comment": text[:500]}]},
        )
    surrogates = {name: serve_escape(devserver, pid, next(at), esc) for name, esc in LONE_SURROGATES.items()}
    pair = serve_escape(devserver, pid, next(at), PAIR_ESCAPE)
    add_source(db, devserver, "Acme", window="7d", projects=[project["name"]])

    result = run_import(fast_definitions(db), instance, day, day)
    assert result.success, failure_text(result)

    served = devserver.items(pid, *day_range(day, day))
    dps = query(db, "SELECT feedback_id FROM data_points")
    rejected = query(db, "SELECT feedback_id, reason, payload FROM rejected_items")
    assert len(dps) + len(rejected) == len(served), "every item is one data point or one rejection"
    dp_ids = {r[0] for r in dps}
    assert len(dp_ids) == len(dps)
    assert not dp_ids & {r[0] for r in rejected if r[0]}
    assert all(reason.strip() and payload for _, reason, payload in rejected)
    assert query(db, "SELECT count(*) FROM raw_feedback") == [(len(dps),)]

    # the malformed kinds: rejected, each with its reason
    assert len(rejected) == len(MALFORMED_KINDS) + len(LONE_SURROGATES)
    reasons = {fid: reason for fid, reason, _ in rejected}
    for item in malformed:
        if "feedback_id" in item:
            assert item["feedback_id"] in reasons
    assert sum(1 for fid, _, _ in rejected if fid is None) == 1  # the one without a feedback_id
    # lone surrogates: rejected with a reason that says so; the payload is storable (escaped)
    for item in surrogates.values():
        assert "surrogate" in reasons[item["feedback_id"]], reasons[item["feedback_id"]]
    # a proper surrogate pair is just an emoji
    assert turn_texts(db, pair["feedback_id"]) == [PAIR_TEXT]

    # hostile strings round-trip exactly: turns, text, labels, email, custom data, raw JSON
    for name, text in HOSTILE.items():
        fid = hostile[name]["feedback_id"]
        expected = map_item(jsonio.loads(jsonio.dumps(hostile[name])))
        assert isinstance(expected, DataPoint), name
        turns = turn_texts(db, fid)
        assert turns == [t.text for t in expected.turns], name
        if text.strip():
            assert turns[0] == text, name
        row = query(db, "SELECT text, tags, email FROM data_points WHERE feedback_id = ?", [fid])[0]
        assert row[0] == expected.text and row[1] == [text[:200]] and row[2] == expected.email, name
        fields = dict(
            query(
                db,
                "SELECT name, value FROM data_point_fields WHERE feedback_id = ? AND origin = 'custom_data'",
                [fid],
            )
        )
        assert fields["note"] == text and fields[f"key {text[:20]}.nested"] == text[:50], name
        raw = jsonio.loads(query(db, "SELECT item FROM raw_feedback WHERE feedback_id = ?", [fid])[0][0])
        assert raw["ordered_inputs"][0]["text_value"] == text, name
    # the tables survived the SQL in the texts
    assert query(db, "SELECT count(*) FROM data_points") == [(len(dps),)]


def turn_texts(db: str, feedback_id: str) -> list[str]:
    rows = query(db, "SELECT text FROM data_point_turns WHERE feedback_id = ? ORDER BY turn", [feedback_id])
    return [r[0] for r in rows]


def test_hostile_channel_and_source_names_round_trip_through_the_cli(env, devserver: DevServer) -> None:
    """Names are data, never SQL: quotes and semicolons in a channel or source name connect, show and delete."""
    channel, source = "O'Brien's \"feedback\"; DROP TABLE channels; --", "src'); DELETE FROM sources; --"
    ids = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
    project = devserver.workspace("Acme").projects[0]["name"]
    connected = run_cli(
        "connect", "--channel", channel, "--source", source, *ids, "--project", project, "--backfill", "7d", env=env
    )
    assert connected.returncode == 0, connected.stderr
    status = run_cli("status", env=env)
    assert status.returncode == 0 and channel in status.stdout and source in status.stdout, status.stdout
    db = env["USERSNAP_CHANNELS_DB"]
    assert query(db, "SELECT channel_name, source_name FROM sources") == [(channel, source)]
    deleted = run_cli("delete", "--channel", channel, "--source", source, "--yes", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert query(db, "SELECT count(*) FROM sources") == [(0,)]
    # the channel went with its last source (by name, as data): the tables themselves are all still there
    assert query(db, "SELECT channel_name FROM channels") == []
    assert {r[0] for r in query(db, "SELECT table_name FROM duckdb_tables()")} >= {"channels", "sources", "data_points"}


# -- any batch of items, through the mapping and one DuckDB transaction ---------------------------

UNIT_DAY = date(2026, 1, 15)


def unit_for(day: date) -> Unit:
    return Unit("src_hypothesis", "Channel 'x'", 'Source "y"', "project-1", "Project; --", day)


@st.composite
def damaged_items(draw: st.DrawFn) -> Any:
    """A valid item with one or two top-level fields replaced by arbitrary JSON."""
    item, _ = draw(valid_items())
    for key in draw(st.lists(st.sampled_from(TOP_LEVEL_KEYS), min_size=1, max_size=2)):
        item[key] = draw(small_junk_json)
    return item


def item_lists(max_size: int) -> st.SearchStrategy[list[Any]]:
    """Lists of valid, damaged and junk items (junk: any JSON value at all, not even an object)."""
    return st.lists(
        st.one_of(valid_items().map(lambda case: case[0]), damaged_items(), small_junk_json), max_size=max_size
    )


def check_stored_batch(items: list[Any], day: date) -> None:
    """Write the items as one unit into a fresh database and check each became exactly one row."""
    con = duckdb.connect()
    try:
        ensure_schema(con)
        batch = FeedbackBatch(run_id="hypothesis")
        counts = batch.add_unit(unit_for(day), items)
        write_batch(con, batch)
        dps = con.execute("SELECT feedback_id, text FROM data_points").fetchall()
        rejected = con.execute("SELECT reason FROM rejected_items").fetchall()
        assert len(dps) + len(rejected) == len(items) == counts.items
        assert (counts.data_points, counts.rejected) == (len(dps), len(rejected))
        assert all(reason.strip() for (reason,) in rejected)
        assert len({fid for fid, _ in dps}) == len(dps)
        assert con.execute("SELECT count(*) FROM raw_feedback").fetchone()[0] == len(dps)
        stored = {fid: text for fid, text in dps}
        compared: set[str] = set()
        for item in items:  # the first item of an id on the unit's day is the one stored; later ones are duplicates
            result = map_item(item)
            if (
                isinstance(result, DataPoint)
                and result.feedback_id in stored
                and result.feedback_id not in compared
                and result.submitted_at.astimezone(UTC).date() == day
            ):
                compared.add(result.feedback_id)
                assert stored[result.feedback_id] == result.text
                turns = con.execute(
                    "SELECT label, text FROM data_point_turns WHERE feedback_id = ? ORDER BY turn", [result.feedback_id]
                ).fetchall()
                assert turns == [(t.label, t.text) for t in result.turns]
    finally:
        con.close()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=item_lists(6), pick_day=st.integers(0, 5))
def test_any_batch_of_items_is_stored_one_row_per_item(items: list[Any], pick_day: int) -> None:
    """Arbitrary JSON-shaped items (valid, almost valid, junk) never fail the write, and each becomes one
    data point or one rejection; the unit's day is usually one of the items' own days, so most valid
    items land as data points rather than "outside the requested day"."""
    days = [r.submitted_at.astimezone(UTC).date() for r in map(map_item, items) if isinstance(r, DataPoint)]
    check_stored_batch(items, days[pick_day % len(days)] if days else UNIT_DAY)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=item_lists(25))
def test_soak_any_batch_of_items_is_stored_one_row_per_item(items: list[Any]) -> None:
    days = [r.submitted_at.astimezone(UTC).date() for r in map(map_item, items) if isinstance(r, DataPoint)]
    check_stored_batch(items, days[0] if days else UNIT_DAY)
