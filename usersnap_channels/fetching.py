"""Fetching one unit and turning it into Arrow rows: the work a fetch worker does.

Dagster-free and picklable, so it runs in worker processes (the mapping is CPU-bound Python: processes
use every core where threads would queue on the GIL) or in threads for small imports. Workers get
only a `ClientSpec` — variable *names* — and read the key from their own environment.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from usersnap_channels.client import ClientSpec, UsersnapClient
from usersnap_channels.partitions import day_bounds
from usersnap_channels.storage import FeedbackBatch, Unit, UnitCounts

_clients: dict[tuple[ClientSpec, int, int], UsersnapClient] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class UnitJob:
    unit: Unit
    client: ClientSpec
    fetched_at: datetime
    run_id: str | None = None


@dataclass
class UnitResult:
    unit: Unit
    counts: UnitCounts
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


def fetch_unit(job: UnitJob) -> UnitResult:
    """Every page of one unit, mapped; the unit's rows as Arrow tables. Raises on any Usersnap failure,
    so a unit is either complete or not written at all."""
    client = _client(job.client)
    before = client.requests_made
    start, end = day_bounds(job.unit.day)
    items: list = []
    for page in client.iter_feedback_pages(job.unit.project_id, start, end):
        items.extend(page)
    batch = FeedbackBatch(run_id=job.run_id)
    counts = batch.add_unit(job.unit, items, fetched_at=job.fetched_at)
    return UnitResult(job.unit, counts, batch.to_arrow(), client.requests_made - before)
