"""Many `filter/count` calls at once, for the sync sensor's polls and the asset check's comparisons."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from usersnap_channels.usersnap.client import InvalidCredentials, MissingCredentials, UsersnapClient, UsersnapError

#: Parallel Usersnap count requests (a 6-month check is ~180 per project).
COUNT_WORKERS = 8


@dataclass(frozen=True)
class CountTask:
    """One `filter/count` call: items of one source's project with start <= created_at < end."""

    source_id: str
    project_id: str
    start: datetime
    end: datetime


@dataclass
class CountOutcome:
    """Counts by task index. A source whose key fails is reported once (its other tasks are dropped);
    other failures are reported per task. Callers word the errors (they know the sources)."""

    counts: dict[int, int] = field(default_factory=dict)
    source_errors: dict[str, UsersnapError] = field(default_factory=dict)
    task_errors: dict[int, UsersnapError] = field(default_factory=dict)
    requests: int = 0


class _Clients:
    """One client per source and thread (a requests.Session is not shared between threads)."""

    def __init__(self, factory: Callable[[str], UsersnapClient]) -> None:
        self._factory = factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self.all: list[UsersnapClient] = []

    def get(self, source_id: str) -> UsersnapClient:
        cache = getattr(self._local, "clients", None)
        if cache is None:
            cache = self._local.clients = {}
        if source_id not in cache:
            cache[source_id] = self._factory(source_id)
            with self._lock:
                self.all.append(cache[source_id])
        return cache[source_id]


def count_many(
    tasks: Sequence[CountTask], client_factory: Callable[[str], UsersnapClient], *, workers: int = COUNT_WORKERS
) -> CountOutcome:
    """Run the count calls on a small thread pool, so a tick over 20 projects costs one round trip of wall
    time, not twenty. `client_factory` builds a client for a source id."""
    outcome = CountOutcome()
    clients = _Clients(client_factory)
    lock = threading.Lock()

    def run(index: int) -> None:
        task = tasks[index]
        if task.source_id in outcome.source_errors:
            return
        try:
            count = clients.get(task.source_id).count_feedback(task.project_id, task.start, task.end)
        except (InvalidCredentials, MissingCredentials) as exc:
            with lock:
                outcome.source_errors.setdefault(task.source_id, exc)
        except UsersnapError as exc:
            with lock:
                outcome.task_errors[index] = exc
        else:
            with lock:
                outcome.counts[index] = count

    if tasks:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))), thread_name_prefix="count") as pool:
            list(pool.map(run, range(len(tasks))))
    for client in clients.all:
        outcome.requests += client.requests_made
        client.close()
    for index in [i for i, t in enumerate(tasks) if t.source_id in outcome.source_errors]:
        outcome.counts.pop(index, None)
        outcome.task_errors.pop(index, None)
    return outcome
