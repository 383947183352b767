"""The report in a real headless Chromium, network off: charts render, filters recompute every number exactly
(checked against SQL on the same DuckDB file), hostile feedback stays text, no email address is in the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from usersnap_channels.partitions import utc_today
from usersnap_channels.report import sample
from usersnap_channels.report.ratings import pick_rating_fields
from usersnap_channels.themes.trends import top_themes
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.report import NumericField
from usersnap_channels_tests.conftest import run_cli
from usersnap_channels_tests.helpers import query
from usersnap_channels_tests.report.conftest import EMAIL_ANYWHERE, Opened

CHANNEL = "Synthetic feedback"
HOSTILE = ("</script><script>alert(1)</script>", "<img src=x onerror=alert(1)>")
THEMES = 12


@pytest.fixture
def sample_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A themed channel of 3,000 data points (two sources, five projects) with hostile example texts."""
    db = str(tmp_path / "channels.duckdb")
    con = connect(db)
    try:
        spec = sample.SampleSpec(channel=CHANNEL, data_points=3_000, themes=THEMES, extra_texts=HOSTILE)
        sample.build(con, spec, utc_today())
    finally:
        con.close()
    monkeypatch.setenv("USERSNAP_CHANNELS_DB", db)
    return db


def write_report(db: str, out: Path, *args: str) -> Path:
    result = run_cli("report", "--out", str(out), *args, env={"USERSNAP_CHANNELS_DB": db})
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(out) in result.stdout.replace("\n", "")
    return out


def table(opened: Opened) -> dict[int, dict[str, float]]:
    """The theme table as the page shows it: theme id → size, last 7 days, 28 days before."""
    rows = opened.page.eval_on_selector_all(
        "#themes tbody tr",
        "rows => rows.map(r => [r.dataset.themeId, r.dataset.size, r.dataset.last7, r.dataset.prev28])",
    )
    return {int(r[0]): {"size": int(r[1]), "last7": int(r[2]), "prev28": int(r[3])} for r in rows}


def kpi(opened: Opened, name: str) -> float:
    return float(opened.page.get_attribute(f"#kpi-{name}", "data-value"))


def expected(db: str, where: str = "true", params: list | None = None) -> dict[int, dict[str, int]]:
    """Per active theme, from SQL: data points, those of the last 7 UTC days and of the 28 before."""
    rows = query(
        db,
        f"""
        WITH d AS (SELECT *, (submitted_at AT TIME ZONE 'UTC')::DATE AS day FROM data_points)
        SELECT t.theme_id, count(*), count(*) FILTER (WHERE d.day > ?::DATE - 7 AND d.day <= ?::DATE),
               count(*) FILTER (WHERE d.day > ?::DATE - 35 AND d.day <= ?::DATE - 7)
        FROM data_point_themes t JOIN d USING (source_id, feedback_id)
        JOIN themes th ON th.theme_id = t.theme_id AND th.status = 'active'
        WHERE d.channel_name = ? AND {where}
        GROUP BY 1
        """,
        [utc_today()] * 4 + [CHANNEL, *(params or [])],
    )
    return {r[0]: {"size": r[1], "last7": r[2], "prev28": r[3]} for r in rows}


def test_the_report_renders_its_charts_offline_and_matches_the_warehouse(sample_db, tmp_path, open_report) -> None:
    out = write_report(sample_db, tmp_path / "report.html", "--channel", CHANNEL)
    opened = open_report(out)
    page = opened.page
    for chart in ("#chart-top svg", "#chart-multiples svg"):
        box = page.locator(chart).first.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, chart
    assert page.locator("#chart-top .mark-line path").count() == 8, "one line per top theme"
    assert page.locator("#chart-multiples .mark-area path").count() == THEMES, "one small trend per theme"
    assert page.locator("#themes tbody tr").count() == THEMES
    assert opened.blocked == [] and opened.console_errors == [] and opened.dialogs == []

    con = connect(sample_db, read_only=True)
    try:
        summaries = top_themes(con, CHANNEL, utc_today())
    finally:
        con.close()
    shown = table(opened)
    assert list(shown) == [t.theme_id for t in summaries], "ranked as the CLI ranks them"
    assert shown == {
        t.theme_id: {"size": t.size, "last7": t.last_7_days, "prev28": t.previous_28_days} for t in summaries
    }
    total, with_text, themed = query(
        sample_db,
        "SELECT count(*), count(*) FILTER (WHERE trim(text) <> ''), count(t.theme_id) FROM data_points "
        "LEFT JOIN data_point_themes t USING (source_id, feedback_id) WHERE channel_name = ?",
        [CHANNEL],
    )[0]
    assert (kpi(opened, "data-points"), kpi(opened, "with-text"), kpi(opened, "themed")) == (total, with_text, themed)
    emerging = [
        row[0] for row in page.eval_on_selector_all("tr[data-emerging=true]", "r => r.map(x => [x.dataset.themeId])")
    ]
    assert sorted(int(e) for e in emerging) == sorted(t.theme_id for t in summaries if t.emerging)
    opened.screenshot("report-unfiltered")


def test_filters_recompute_every_total_exactly(sample_db, tmp_path, open_report) -> None:
    opened = open_report(write_report(sample_db, tmp_path / "report.html", "--channel", CHANNEL))
    page = opened.page
    before = table(opened)

    project = page.locator("#f-source option", has_text="Globex / Billing").get_attribute("value")
    renders = opened.renders()
    page.select_option("#f-source", project)
    opened.wait_renders(renders)
    page.select_option("#f-status", label="open")
    opened.wait_renders(renders + 1)
    where = "d.project_name = 'Billing' AND d.status = 'open'"
    assert table(opened) == expected(sample_db, where) != before
    total = query(sample_db, f"SELECT count(*) FROM data_points d WHERE channel_name = ? AND {where}", [CHANNEL])
    assert kpi(opened, "data-points") == total[0][0]
    lines = page.locator("#chart-multiples .mark-area path").count()
    assert lines == len(expected(sample_db, where)), "the small multiples follow the selection"

    renders = opened.renders()
    page.select_option("#f-source", "all")
    opened.wait_renders(renders)
    page.select_option("#f-status", "all")
    opened.wait_renders(renders + 1)
    page.select_option("#f-tag", label="Billing")
    opened.wait_renders(renders + 2)
    assert table(opened) == expected(sample_db, "list_contains(d.tags, 'Billing')")

    renders = opened.renders()
    page.fill("#f-search", "topic3")  # a keyword of exactly one theme
    opened.wait_renders(renders)
    only = table(opened)
    assert len(only) == 1
    assert kpi(opened, "data-points") == next(iter(only.values()))["size"]
    opened.screenshot("report-filtered")
    assert opened.blocked == [] and opened.console_errors == []


def test_hostile_feedback_is_shown_as_text_and_never_runs(sample_db, tmp_path, open_report) -> None:
    out = write_report(sample_db, tmp_path / "report.html", "--channel", CHANNEL)
    html = out.read_text()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    opened = open_report(out)
    page = opened.page
    page.locator("#themes tbody tr").first.locator("summary").click()
    texts = page.eval_on_selector_all("#themes tbody tr:first-child .examples li", "l => l.map(x => x.firstChild.data)")
    for hostile in HOSTILE:
        assert hostile in texts, "shown literally, as the user wrote it"
    assert page.locator("#themes img").count() == 0 and page.locator("body script").count() == 3
    page.wait_for_timeout(300)
    assert opened.dialogs == [] and opened.console_errors == []
    opened.screenshot("report-hostile")


def test_no_email_address_anywhere_in_the_page(sample_db, tmp_path, open_report) -> None:
    assert query(sample_db, "SELECT count(*) FROM data_points WHERE text LIKE '%@example.com%'")[0][0] > 0
    assert query(sample_db, "SELECT count(*) FROM data_points WHERE email IS NOT NULL")[0][0] > 0
    out = write_report(sample_db, tmp_path / "report.html", "--channel", CHANNEL)
    assert EMAIL_ANYWHERE.findall(out.read_text()) == []
    opened = open_report(out)
    opened.page.eval_on_selector_all("details", "d => d.forEach(x => x.open = true)")
    assert EMAIL_ANYWHERE.findall(opened.page.inner_text("body")) == []
    assert "[email removed]" in opened.page.inner_text("body")


def test_ratings_and_nps_follow_the_rule_and_match_sql(sample_db, tmp_path, open_report) -> None:
    fields = [
        NumericField("How would you rate this page?", 10, True, 1, 5),
        NumericField("How likely are you to recommend us to a friend or colleague?", 10, True, 0, 10),
        NumericField("Order number", 10, True, 10**16, 10**17),
        NumericField("Amount", 10, False, 1, 999.5),
        NumericField("Score (free text total)", 10, True, 0, 250),
        NumericField("Quantity", 10, True, 1, 5),
    ]
    picked = {f.name: f.kind for f in pick_rating_fields(fields)}
    assert picked == {"How would you rate this page?": "rating", fields[1].name: "nps"}
    assert [f.name for f in pick_rating_fields(fields, ["Quantity"])] == ["Quantity"]

    opened = open_report(write_report(sample_db, tmp_path / "report.html", "--channel", CHANNEL))
    top = opened.page.locator("#themes tbody tr").first
    theme_id = int(top.get_attribute("data-theme-id"))
    cells = top.locator("td[data-rating]")
    shown = {cells.nth(i).get_attribute("data-rating"): cells.nth(i) for i in range(cells.count())}
    assert set(shown) == set(picked)
    mean, answers = query(
        sample_db,
        "SELECT avg(n.number), count(*) FROM data_point_numbers n JOIN data_point_themes t USING (source_id, "
        "feedback_id) WHERE t.theme_id = ? AND n.name = 'How would you rate this page?'",
        [theme_id],
    )[0]
    cell = shown["How would you rate this page?"]
    assert float(cell.get_attribute("data-value")) == pytest.approx(mean)
    assert int(cell.get_attribute("data-count")) == answers
    nps = query(
        sample_db,
        "SELECT round(100 * (count(*) FILTER (WHERE n.number >= 9) - count(*) FILTER (WHERE n.number <= 6)) "
        "/ count(*)) FROM data_point_numbers n JOIN data_point_themes t USING (source_id, feedback_id) "
        "WHERE t.theme_id = ? AND n.name LIKE 'How likely%'",
        [theme_id],
    )[0][0]
    assert float(shown[fields[1].name].get_attribute("data-value")) == pytest.approx(nps, abs=1)


def test_without_channel_every_channel_is_in_one_page_with_a_selector(sample_db, tmp_path, open_report) -> None:
    con = connect(sample_db)
    try:
        sample.build(con, sample.SampleSpec(channel="Second channel", data_points=400, themes=4, seed=2), utc_today())
    finally:
        con.close()
    result = run_cli("report", env={"USERSNAP_CHANNELS_DB": sample_db})
    assert result.returncode == 0, result.stderr
    out = Path(sample_db).parent / "reports" / "all-channels.html"
    assert str(out) in result.stdout.replace("\n", ""), "the documented default path beside the database"
    opened = open_report(out)
    assert kpi(opened, "data-points") == 400, "channels by name: 'Second channel' first"
    assert opened.page.locator("#themes tbody tr").count() == 4
    renders = opened.renders()
    opened.page.select_option("#f-channel", label=CHANNEL)
    opened.wait_renders(renders)
    assert kpi(opened, "data-points") == 3_000 + len(HOSTILE)
    assert opened.page.locator("#themes tbody tr").count() == THEMES
    assert opened.page.locator("section.overview:not([hidden]) h2").inner_text() == CHANNEL

    unknown = run_cli("report", "--channel", "Nope", env={"USERSNAP_CHANNELS_DB": sample_db})
    assert unknown.returncode == 2 and "No channel 'Nope'" in unknown.stderr and "Traceback" not in unknown.stderr
