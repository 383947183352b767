"""A worker fetches consecutive days of one project as one span: one paged query split by day, the same rows
as a day at a time with far fewer requests, and a fallback to day-by-day that keeps every rejection on the
day Usersnap files the item (an item whose `created_at` names no day of the span cannot be placed by it)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today
from usersnap_channels_tests.conftest import add_source, run_import
from usersnap_channels_tests.helpers import query
from usersnap_channels_tests.reliability.test_faults import day_range, failure_text, fast_definitions


def test_spans_of_days_take_fewer_requests_and_keep_every_item_on_its_day(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=23)
    source = add_source(db, devserver, "Acme", window="30d", projects=["Web App"])
    pid = source.projects[0].project_id
    unplaceable_day, anonymous_day = first + timedelta(days=7), first + timedelta(days=15)
    unplaceable = devserver.add_malformed(
        pid, "bad_created_at", created_at=datetime.combine(unplaceable_day, time(12), tzinfo=UTC)
    )
    devserver.add_malformed(pid, "no_feedback_id", created_at=datetime.combine(anonymous_day, time(12), tzinfo=UTC))
    devserver.clear_log()

    result = run_import(fast_definitions(db), instance, first, today, workers=1)
    assert result.success, failure_text(result)

    days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
    served = {day: [i.get("feedback_id") for i in devserver.items(pid, *day_range(day, day))] for day in days}
    held = query(db, "SELECT partition_date, list(feedback_id ORDER BY feedback_id) FROM data_points GROUP BY 1")
    expected = {day: sorted(i for i in ids if i and i != unplaceable["feedback_id"]) for day, ids in served.items()}
    assert dict(held) == {day: ids for day, ids in expected.items() if ids}
    assert query(db, "SELECT count(*) FROM sync_state") == [(len(days),)]
    # each rejection on the day Usersnap files it: the span holding the unplaceable item went day by day
    rejected = query(db, "SELECT feedback_id, partition_date FROM rejected_items ORDER BY partition_date")
    assert rejected == [(unplaceable["feedback_id"], unplaceable_day), (None, anonymous_day)]

    fetched = [r for r in devserver.request_log if r.path.endswith("/feedbacks/filter")]
    assert len(fetched) <= len(days) // 2, f"{len(fetched)} requests for {len(days)} days of one page each"
