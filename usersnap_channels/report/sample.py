"""A synthetic themed channel written through the warehouse's own write functions, for the report's
benchmark, its browser tests and its screenshot: any size in seconds, without embedding a text.

Themes have Zipf-like sizes; a few grow in the last 7 days (emerging); texts quote email addresses; form
fields hold a 1–5 rating, an NPS answer, order numbers and amounts (which must never be averaged).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from usersnap_channels.warehouse import themes as store
from usersnap_channels.warehouse.feedback import FEEDBACK_TABLES, Unit, write_arrow
from usersnap_channels.warehouse.registry import Project, Source, connect_source, record_sync
from usersnap_channels.warehouse.schema import EMBEDDING_DIM, TABLES

WORDS = [
    "checkout",
    "payment",
    "login",
    "password",
    "export",
    "invoice",
    "search",
    "filter",
    "dashboard",
    "upload",
    "mobile",
    "sync",
    "crash",
    "slow",
    "button",
    "layout",
    "font",
    "dark",
    "mode",
    "pricing",
    "plan",
    "refund",
    "shipping",
    "address",
    "calendar",
    "notification",
    "email",
    "report",
    "chart",
    "share",
    "permission",
    "team",
    "invite",
    "language",
    "translation",
    "timeout",
    "error",
    "signup",
    "onboarding",
    "tutorial",
]
STATUSES = ("open", "in_progress", "done", "closed", None)
PRIORITIES = ("low", "medium", "high", "urgent", None)
TAGS = ("Bug", "UX", "Billing", "Mobile", "Performance", "Feature request")
RATING = "How would you rate this page?"
NPS = "How likely are you to recommend us to a friend or colleague?"


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. `extra_texts` go to the largest theme, closest to its centroid (shown as examples)."""

    channel: str = "Synthetic feedback"
    data_points: int = 2_000
    themes: int = 12
    days: int = 90
    seed: int = 1
    emerging: int = 2
    extra_texts: Sequence[str] = field(default_factory=tuple)


def build(con: duckdb.DuckDBPyConnection, spec: SampleSpec, today: date) -> None:
    """Write the channel: sources, data points with fields, themes, assignments and trends."""
    rng = random.Random(spec.seed)
    start = today - timedelta(days=spec.days - 1)
    sources = _sources(con, spec.channel, start)
    weights = [1 / (k + 1) ** 0.9 for k in range(spec.themes)]
    keys, theme_of, units, rows = [], [], {}, {name: [] for name in ("data_points", "data_point_fields")}
    for i in range(spec.data_points + len(spec.extra_texts)):
        extra = i >= spec.data_points
        theme = 0 if extra else rng.choices(range(spec.themes), weights)[0]
        source, project = rng.choice(sources)
        day = _day(rng, start, today, emerging=0 < theme <= spec.emerging)
        text = spec.extra_texts[i - spec.data_points] if extra else _text(rng, theme)
        key = (source.source_id, str(uuid.UUID(int=rng.getrandbits(128))))
        units.setdefault((source.source_id, project.project_id, day), (source, project))
        rows["data_points"].append(_data_point(rng, spec.channel, source, project, key, day, text, i))
        rows["data_point_fields"].extend(_fields(rng, key))
        keys.append(key)
        theme_of.append(None if not text.strip() or (not extra and rng.random() < 0.05) else theme)
    _write_feedback(con, units, rows)
    _write_themes(con, spec, keys, theme_of)
    for source_id in sorted({s.source_id for s, _ in sources}):
        record_sync(con, source_id, error=None, now=datetime.combine(today, time(6), tzinfo=UTC))


def _sources(con: duckdb.DuckDBPyConnection, channel: str, start: date) -> list[tuple[Source, Project]]:
    """Two sources (Acme: 3 projects, Globex: 2), as (source, project) pairs."""
    pairs = []
    for name, projects in (
        ("Acme workspace", ("Web App", "Mobile App", "Checkout")),
        ("Globex", ("Portal", "Billing")),
    ):
        picked = [Project(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{channel}/{name}/{p}")), p) for p in projects]
        source = connect_source(
            con,
            channel=channel,
            source=name,
            jwt_id_env="X_JWT_ID",
            jwt_secret_env="X_JWT_SECRET",
            backfill_window="90d",
            window_start=start,
            projects=picked,
        )
        pairs += [(source, p) for p in picked]
    return pairs


def _day(rng: random.Random, start: date, today: date, *, emerging: bool) -> date:
    span = (today - start).days
    if emerging and rng.random() < 0.6:
        return today - timedelta(days=rng.randint(0, 6))
    return start + timedelta(days=rng.randint(0, span))


def _text(rng: random.Random, theme: int) -> str:
    if rng.random() < 0.04:
        return ""
    words = [WORDS[(theme * 3 + j) % len(WORDS)] for j in range(3)] + rng.sample(WORDS, 6)
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.05:
        text += f" Write to me at person{rng.randint(1, 999)}@example.com please."
    return text


def _data_point(
    rng: random.Random,
    channel: str,
    source: Source,
    project: Project,
    key: tuple[str, str],
    day: date,
    text: str,
    i: int,
) -> dict:
    submitted = datetime.combine(day, time(rng.randint(0, 23), rng.randint(0, 59)), tzinfo=UTC)
    return {
        "channel_name": channel,
        "source_id": source.source_id,
        "source_name": source.source_name,
        "project_id": project.project_id,
        "project_name": project.name,
        "feedback_id": key[1],
        "feedback_number": i + 1,
        "submitted_at": submitted,
        "link": f"https://app.usersnap.com/l/feedback/{key[1]}",
        "email": f"reporter{i}@example.com" if rng.random() < 0.7 else None,
        "status": rng.choice(STATUSES),
        "priority": rng.choice(PRIORITIES),
        "tags": rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2))),
        "text": text,
        "imported_at": submitted,
        "partition_date": day,
    }


def _fields(rng: random.Random, key: tuple[str, str]) -> list[dict]:
    """A rating, an NPS answer, or an order number with an amount (numbers that are not ratings)."""
    roll = rng.random()
    if roll < 0.25:
        pairs = [(RATING, str(rng.randint(1, 5)))]
    elif roll < 0.45:
        pairs = [(NPS, str(rng.randint(0, 10)))]
    elif roll < 0.5:
        pairs = [("Order number", str(rng.randint(10**16, 10**17 - 1))), ("Amount", f"{rng.randint(1, 999)}.50")]
    else:
        pairs = []
    base = {"source_id": key[0], "feedback_id": key[1], "value_type": "number", "origin": "form"}
    return [{**base, "name": name, "value": value} for name, value in pairs]


def _write_feedback(con: duckdb.DuckDBPyConnection, units: dict, rows: dict[str, list[dict]]) -> None:
    unit_list = [
        Unit(s.source_id, s.channel_name, s.source_name, p.project_id, p.name, day)
        for (_, _, day), (s, p) in units.items()
    ]
    tables = {}
    for name in FEEDBACK_TABLES:
        schema = TABLES[name].arrow_schema()
        tables[name] = pa.Table.from_pylist(rows.get(name, []), schema=schema)
    write_arrow(con, unit_list, tables)


def _write_themes(con: duckdb.DuckDBPyConnection, spec: SampleSpec, keys: list, theme_of: list) -> None:
    first = store.next_theme_id(con)
    sizes = [0] * spec.themes
    for t in theme_of:
        if t is not None:
            sizes[t] += 1
    themes = []
    for k in range(spec.themes):
        words = [WORDS[(k * 3 + j) % len(WORDS)] for j in range(3)]
        centroid = np.zeros(EMBEDDING_DIM, np.float32)
        centroid[k % EMBEDDING_DIM] = 1.0
        themes.append(store.ThemeRow(first + k, " / ".join(words), [*words, f"topic{k}"], sizes[k], centroid))
    record = store.RecomputeRow("first", "synthetic", len(keys), theme_of.count(None), 0.0)
    store.write_recompute(con, spec.channel, themes, [], record)
    ids = [None if t is None else first + t for t in theme_of]
    scores = np.array([1.0 if i >= spec.data_points else 0.5 + (i % 97) / 200 for i in range(len(keys))])
    store.write_assignments(con, keys, ids, scores, "recompute")
    store.refresh_theme_stats(con, spec.channel)
    store.refresh_trends(con, spec.channel)
