"""Render the report: Jinja2 templates in `report/templates/` (autoescaped), the page data as escaped JSON,
the chart specs, our script and the Vega runtime inlined, written atomically to one HTML file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import jinja2
from markupsafe import Markup

from usersnap_channels.report import charts, runtime
from usersnap_channels.report.data import ChannelReport, channel_report, scrub
from usersnap_channels.warehouse.schema import EMERGING_MIN_RATIO, EMERGING_MIN_RECENT

TEMPLATES = Path(__file__).with_name("templates")

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value: Any) -> Markup:
    """JSON safe inside `<script>`: no `<`, `>` or `&` (so no `</script>` or `<!--`), no JS line breaks."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return Markup(text)


def inline_script(code: str) -> Markup:
    """Trusted script text (ours, the Vega runtime) for an inline `<script>`: `</script` cannot end it early."""
    return Markup(code.replace("</script", "<\\/script").replace("<!--", "<\\!--"))


def environment() -> jinja2.Environment:
    """Templates from files, every `{{ }}` HTML-escaped unless it is explicitly `Markup`."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class Report:
    """A rendered page and what it holds (the Dagster asset's metadata reads `channels`)."""

    html: str
    channels: list[ChannelReport]


def build(
    con: duckdb.DuckDBPyConnection,
    channels: Sequence[str],
    *,
    today: date,
    rating_names: Sequence[str] = (),
    generated_at: datetime | None = None,
) -> Report:
    """The page for these channels (one, or several with a channel selector), as of the UTC day `today`."""
    reports = [channel_report(con, name, today, rating_names) for name in channels]
    moment = (generated_at or datetime.now(UTC)).astimezone(UTC)
    page = {
        "asOf": today.isoformat(),
        "generatedAt": moment.strftime("%Y-%m-%d %H:%M UTC"),
        "channels": [r.payload for r in reports],
        "specs": {"top": charts.trend_chart(), "multiples": charts.multiples_chart()},
        "topLines": charts.TOP_LINES,
        "multiples": charts.MULTIPLES,
        "emerging": {"minRecent": EMERGING_MIN_RECENT, "minRatio": EMERGING_MIN_RATIO},
    }
    scripts = {
        "runtime_js": inline_script(runtime.javascript()),
        "app_js": inline_script((TEMPLATES / "report.js").read_text(encoding="utf-8")),
    }
    template = environment().get_template("report.html.j2")
    html = template.render(
        title=_title(channels),
        channels=[r.payload for r in reports],
        as_of=page["asOf"],
        generated_at=page["generatedAt"],
        runtime_versions=runtime.versions(),
        page_json=script_json(page),
        css=Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
        top_lines=charts.TOP_LINES,
        multiples=charts.MULTIPLES,
        emerging_min_recent=EMERGING_MIN_RECENT,
        emerging_ratio=f"{EMERGING_MIN_RATIO:g}",
        script_hashes=" ".join(_csp_hash(code) for code in scripts.values()),
        **scripts,
    )
    return Report(html, reports)


def _csp_hash(code: str) -> str:
    """The Content-Security-Policy source that lets exactly this inline script run (and nothing injected)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode() + "'"


def _title(channels: Sequence[str]) -> str:
    if len(channels) == 1:
        return f"{scrub(channels[0])} — themes and trends"
    return "Channels — themes and trends"


def write(html: str, path: Path) -> Path:
    """Write the page atomically (a reader never opens half a report); returns the absolute path."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
