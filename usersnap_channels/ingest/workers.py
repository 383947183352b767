"""Fetching one unit and turning it into Arrow rows: the work a fetch worker does.

Dagster-free and picklable, so it runs in worker processes (the mapping is CPU-bound Python: processes
use every core where threads would queue on the GIL) or in threads for small imports. Workers get
only a `ClientSpec` — variable *names* — and read the key from their own environment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa

from usersnap_channels.ingest.rows import FeedbackBatch, UnitCounts
from usersnap_channels.partitions import day_bounds
from usersnap_channels.usersnap.client import (
    ClientSpec,
    InvalidCredentials,
    MissingCredentials,
    UsersnapClient,
    UsersnapError,
)
from usersnap_channels.usersnap.mapping import parse_created_at
from usersnap_channels.warehouse.feedback import Unit

_clients: dict[tuple[ClientSpec, int, int], UsersnapClient] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class UnitJob:
    """Consecutive units of one source, fetched by one worker call (fewer, larger hand-offs between
    processes than one unit at a time)."""

    units: tuple[Unit, ...]
    client: ClientSpec
    fetched_at: datetime
    run_id: str | None = None


@dataclass
class UnitResult:
    """The units that arrived whole, as Arrow rows, and those that failed, with their errors."""

    done: list[tuple[Unit, UnitCounts]]
    failed: list[tuple[Unit, BaseException]]
    tables: dict[str, pa.Table]
    requests: int


def _client(spec: ClientSpec) -> UsersnapClient:
    """One client (one connection pool) per spec, process and thread, reused across units."""
    key = (spec, os.getpid(), threading.get_ident())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = spec.build()
        return client


def close_clients() -> None:
    """Close this process's clients (after an import that ran its fetches in threads)."""
    with _clients_lock:
        for key in [k for k in _clients if k[1] == os.getpid()]:
            _clients.pop(key).close()


def fetch_units(job: UnitJob) -> UnitResult:
    """Every item of each unit, mapped; a unit whose fetch fails is reported and left out, so a unit is
    either complete or not written at all. After a refused key the source's other units are not tried.

    Consecutive days of one project are fetched as one span (one paged query, split by day), which takes
    far fewer requests when days are small; a span that fails, or holds an item whose `created_at` names
    no day of the span, is fetched again day by day, so failures and rejections stay per unit."""
    client = _client(job.client)
    before = client.requests_made
    batch = FeedbackBatch(run_id=job.run_id)
    result = UnitResult(done=[], failed=[], tables={}, requests=0)
    refused: BaseException | None = None
    for span in _spans(job.units):
        if refused is None and len(span) > 1:
            try:
                by_day = _fetch_span(client, span)
            except (InvalidCredentials, MissingCredentials) as exc:
                refused = exc
            except UsersnapError:
                by_day = None
            else:
                if by_day is not None:
                    for unit in span:
                        result.done.append((unit, batch.add_unit(unit, by_day[unit.day], fetched_at=job.fetched_at)))
                    continue
        for unit in span:
            if refused is not None:
                result.failed.append((unit, refused))
                continue
            try:
                items = _fetch_day(client, unit)
            except (InvalidCredentials, MissingCredentials) as exc:
                refused = exc
                result.failed.append((unit, exc))
                continue
            except UsersnapError as exc:
                result.failed.append((unit, exc))
                continue
            result.done.append((unit, batch.add_unit(unit, items, fetched_at=job.fetched_at)))
    result.tables = batch.to_arrow()
    result.requests = client.requests_made - before
    return result


def _spans(units: Sequence[Unit]) -> list[list[Unit]]:
    """The units as runs of consecutive days of one project, in their order."""
    spans: list[list[Unit]] = []
    for unit in units:
        last = spans[-1][-1] if spans else None
        if (
            last is not None
            and (last.source_id, last.project_id) == (unit.source_id, unit.project_id)
            and unit.day == last.day + timedelta(days=1)
        ):
            spans[-1].append(unit)
        else:
            spans.append([unit])
    return spans


def _fetch_day(client: UsersnapClient, unit: Unit) -> list[Any]:
    start, end = day_bounds(unit.day)
    items: list[Any] = []
    for page in client.iter_feedback_pages(unit.project_id, start, end):
        items.extend(page)
    return items


def _fetch_span(client: UsersnapClient, span: list[Unit]) -> dict[date, list[Any]] | None:
    """Every item of the span's days in one paged query, by the UTC day of its `created_at`; None when an
    item names no day of the span (the caller then asks day by day, as Usersnap files each item)."""
    start, end = day_bounds(span[0].day)[0], day_bounds(span[-1].day)[1]
    by_day: dict[date, list[Any]] = {unit.day: [] for unit in span}
    for page in client.iter_feedback_pages(span[0].project_id, start, end):
        for item in page:
            created = parse_created_at(item.get("created_at")) if isinstance(item, dict) else None
            day = created.date() if created is not None else None
            if day not in by_day:
                return None
            by_day[day].append(item)
    return by_day
