"""The report at scale: a channel of 50,000 data points and 150 themes, written through the warehouse's own
write functions (`usersnap_channels.report.sample`), then

- query: the baseline, only reading what the page needs from DuckDB (rows, themes, examples, ratings);
- render: the whole page (those queries, the chart specs, the template, the inlined Vega runtime);
- open: headless Chromium (Debian's, already running, network off) from navigation start until the page sets
  its ready flag after its last chart rendered; median of 3.

Last line: one JSON object {"data_points", "themes", "bytes", "render_s", "open_s", ...}.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from usersnap_channels.partitions import utc_today
from usersnap_channels.report import runtime, sample
from usersnap_channels.report.data import channel_report
from usersnap_channels.report.render import build, write
from usersnap_channels.warehouse.connection import connect

DATA_POINTS = 50_000
THEMES = 150
OPENS = 3
MAX_BYTES = 5_000_000
MAX_OPEN_S = 2.0
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip


def open_times(path: Path) -> list[float]:
    """Seconds from navigation start to the ready flag, one fresh page per open, the browser already up."""
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for _ in range(OPENS):
            context = browser.new_context(viewport={"width": 1300, "height": 900}, offline=True)
            page = context.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
            page.goto(path.as_uri())
            page.wait_for_function("document.documentElement.dataset.ready === 'true'", timeout=60_000)
            times.append(float(page.evaluate("document.documentElement.dataset.readyMs")) / 1000)
            context.close()
        browser.close()
    return times


def main() -> None:
    today = utc_today()
    with tempfile.TemporaryDirectory() as tmp:
        con = connect(str(Path(tmp) / "bench.duckdb"))
        started = time.perf_counter()
        spec = sample.SampleSpec(channel="Bench", data_points=DATA_POINTS, themes=THEMES, days=180)
        sample.build(con, spec, today)
        print(
            f"synthetic channel: {DATA_POINTS:,} data points, {THEMES} themes in {time.perf_counter() - started:.1f} s"
        )
        runtime.javascript()  # bundled once per machine (cached), not per report

        started = time.perf_counter()
        channel_report(con, "Bench", today)
        query_s = time.perf_counter() - started
        started = time.perf_counter()
        page = build(con, ["Bench"], today=today)
        path = write(page.html, Path(tmp) / "bench.html")
        render_s = time.perf_counter() - started
        con.close()
        size = path.stat().st_size
        opens = open_times(path)
    open_s = statistics.median(opens)
    print(f"query only (baseline): {query_s:.2f} s; render and write: {render_s:.2f} s; ratio {render_s / query_s:.2f}")
    print(
        f"page: {size / 1e6:.2f} MB (limit {MAX_BYTES / 1e6:.0f} MB); open: {', '.join(f'{t:.2f}' for t in opens)} s,"
    )
    print(f"median {open_s:.2f} s (limit {MAX_OPEN_S:.0f} s)")
    result = {
        "data_points": DATA_POINTS,
        "themes": THEMES,
        "bytes": size,
        "render_s": round(render_s, 3),
        "open_s": round(open_s, 3),
        "query_s": round(query_s, 3),
        "render_ratio": round(render_s / query_s, 2),
    }
    print(json.dumps(result))
    if size > MAX_BYTES or open_s > MAX_OPEN_S:
        raise SystemExit("the report is over its size or open-time budget")


if __name__ == "__main__":
    main()
