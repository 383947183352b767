"""What the report page holds of a channel: compact per-data-point rows that its filters aggregate in the
browser (so every total, share, growth and trend line is exact for any selection), a handful of example
texts per theme, the sources and the window. No email address: the page is meant to be shared."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from usersnap_channels.report.ratings import RatingField, pick_rating_fields
from usersnap_channels.themes.trends import ThemeSummary, top_themes
from usersnap_channels.warehouse import report as store

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
EMAIL_MASK = "[email removed]"
#: Examples per theme, and how much of each text the page keeps.
EXAMPLES_PER_THEME = 6
EXAMPLE_CHARS = 400


def scrub(text: str | None) -> str:
    """The text with every email address masked (feedback often quotes one)."""
    return EMAIL.sub(EMAIL_MASK, text or "")


def safe_link(link: str | None) -> str | None:
    """Usersnap's link when it is a plain http(s) URL (never `javascript:` or a mailto)."""
    if link and re.match(r"https?://", link, re.I) and "@" not in link:
        return link
    return None


class _Index:
    """Distinct values in order of first appearance, each with its position (the rows store positions)."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._pos: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        if value not in self._pos:
            self._pos[value] = len(self.values)
            self.values.append(value)
        return self._pos[value]


@dataclass(frozen=True)
class ChannelReport:
    """One channel's part of the page: `payload` goes to the page as JSON; `themes` (ranked, as the CLI
    shows them) feeds the Dagster metadata preview."""

    channel: str
    payload: dict[str, Any]
    themes: list[ThemeSummary]


def channel_report(
    con: duckdb.DuckDBPyConnection, channel: str, today: date, rating_names: Sequence[str] = ()
) -> ChannelReport:
    """Everything the page shows of one channel, as of the UTC day `today`."""
    themes = top_themes(con, channel, today)
    rows = store.data_point_rows(con, channel)
    ratings = pick_rating_fields(store.numeric_form_fields(con, channel), rating_names)
    sources = store.channel_sources(con, channel)
    start = min([*(s.window_start for s in sources), *rows.days[:1]], default=today)
    end = max([today, *rows.days[-1:]])
    theme_pos = {t.theme_id: i for i, t in enumerate(themes)}
    payload: dict[str, Any] = {
        "channel": scrub(channel),
        "start": start.isoformat(),
        "days": (end - start).days + 1,
        "today": (today - start).days,
        "sources": [
            {
                "name": scrub(s.source_name),
                "status": s.status,
                "window": s.backfill_window,
                "windowStart": s.window_start.isoformat(),
                "lastSynced": _iso(s.last_synced_at),
            }
            for s in sources
        ],
        "lastSynced": _iso(max((s.last_synced_at for s in sources if s.last_synced_at), default=None)),
        "themes": [_theme(t) for t in themes],
        "ratings": [{"name": scrub(r.name), "kind": r.kind, "scale": r.scale} for r in ratings],
    }
    payload.update(_rows(rows, start, theme_pos, {s.source_id: scrub(s.source_name) for s in sources}))
    payload["rows"]["ratings"] = _rating_columns(con, channel, ratings, rows.keys)
    _attach_examples(con, channel, payload["themes"], theme_pos, {k: i for i, k in enumerate(rows.keys)})
    return ChannelReport(channel, payload, themes)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _theme(t: ThemeSummary) -> dict[str, Any]:
    return {"id": t.theme_id, "label": scrub(t.label), "keywords": [scrub(k) for k in t.keywords[:8]], "examples": []}


def _rows(
    rows: store.DataPointRows, start: date, theme_pos: dict[int, int], source_names: dict[str, str]
) -> dict[str, Any]:
    """The rows as columns of small integers (positions into the value lists beside them)."""
    projects, statuses, priorities, tag_sets = _Index(), _Index(), _Index(), _Index()
    tags = _Index()
    project_col, tag_col, project_names = [], [], {}
    for source_id, project_id, project_name, row_tags in zip(
        rows.source_ids, rows.project_ids, rows.project_names, rows.tags, strict=True
    ):
        project_col.append(projects((source_id, project_id)))
        project_names[(source_id, project_id)] = project_name or project_names.get((source_id, project_id))
        tag_col.append(tag_sets(tuple(sorted(tags(scrub(t)) for t in set(row_tags)))))
    source_index = _Index()
    for name in source_names.values():
        source_index(name)
    project_list = []
    for source_id, project_id in projects.values:
        source = source_names.get(source_id, source_id)
        name = scrub(project_names[(source_id, project_id)]) or project_id
        project_list.append({"name": name, "source": source_index(source)})
    status_col = [statuses(s) for s in rows.statuses]
    priority_col = [priorities(p) for p in rows.priorities]
    return {
        "sourceNames": source_index.values,
        "projects": project_list,
        "statuses": [scrub(s) if s is not None else None for s in statuses.values],
        "priorities": [scrub(p) if p is not None else None for p in priorities.values],
        "tags": tags.values,
        "tagSets": [list(s) for s in tag_sets.values],
        "rows": {
            "theme": [theme_pos.get(t, -1) if t is not None else -1 for t in rows.theme_ids],
            "day": [(d - start).days for d in rows.days],
            "project": project_col,
            "status": status_col,
            "priority": priority_col,
            "tagSet": tag_col,
            "text": [int(h) for h in rows.has_text],
        },
    }


def _rating_columns(
    con: duckdb.DuckDBPyConnection, channel: str, ratings: list[RatingField], keys: list[tuple[str, str]]
) -> list[list[float | None]]:
    """Per rating field, the value of every row (None where the data point did not answer it)."""
    values = store.numeric_values(con, channel, [r.name for r in ratings])
    return [[_number(values[r.name].get(k)) for k in keys] for r in ratings]


def _number(value: float | None) -> float | int | None:
    return int(value) if value is not None and value == int(value) else value


def _attach_examples(
    con: duckdb.DuckDBPyConnection,
    channel: str,
    themes: list[dict[str, Any]],
    theme_pos: dict[int, int],
    row_of: dict[tuple[str, str], int],
) -> None:
    """A handful of example texts per theme, each with its row (hidden when a filter leaves it out)."""
    for ex in store.theme_examples(con, channel, EXAMPLES_PER_THEME):
        if ex.theme_id not in theme_pos:
            continue
        text = scrub(" ".join(ex.text.split()))
        themes[theme_pos[ex.theme_id]]["examples"].append(
            {
                "text": text[:EXAMPLE_CHARS] + ("…" if len(text) > EXAMPLE_CHARS else ""),
                "link": safe_link(ex.link),
                "when": ex.submitted_at.astimezone(UTC).strftime("%Y-%m-%d"),
                "project": scrub(ex.project_name),
                "row": row_of[(ex.source_id, ex.feedback_id)],
            }
        )


def window_days(start: date, days: int) -> list[date]:
    """The days a payload's `day` positions stand for (tests and the benchmark read rows back with it)."""
    return [start + timedelta(days=i) for i in range(days)]
