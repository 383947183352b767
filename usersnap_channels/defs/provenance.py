"""Which DuckDB file (and which channels and sources) a run touched, on the run and on every materialization.

One Dagster instance can serve runs against several DuckDB files (`sync` with one `USERSNAP_CHANNELS_DB`, the
UI's code location with another); without these a check result of one file would show next to assets of
another with nothing to tell them apart. Launchers (`sync`, the sensor, the schedules) set the tags up front;
the steps add what is missing, so a run launched from the UI carries them too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import dagster as dg

from usersnap_channels.warehouse.registry import Source

#: Run tag and materialization/definition metadata key: the absolute path of the run's DuckDB file.
DATABASE_KEY = "usersnap_channels/database"
#: Run tags: the channels and the sources ("channel / source") a run touched, as JSON lists.
CHANNELS_TAG = "usersnap_channels/channels"
SOURCES_TAG = "usersnap_channels/sources"
#: Run tag and metadata key: the analysts' snapshot a run refreshed (see `warehouse.snapshot`).
SNAPSHOT_KEY = "usersnap_channels/snapshot"


def database_path(database: str | os.PathLike[str]) -> str:
    """The file as one absolute path, whatever working directory the run or the CLI started in."""
    return os.path.abspath(os.fspath(database))


def scope_tags(database: str | os.PathLike[str], sources: Iterable[Source] | None = None) -> dict[str, str]:
    """Run tags naming the DuckDB file and, when known, the channels and sources the run imports."""
    tags = {DATABASE_KEY: database_path(database)}
    if sources is not None:
        picked = list(sources)
        tags[CHANNELS_TAG] = json.dumps(sorted({s.channel_name for s in picked}), ensure_ascii=False)
        tags[SOURCES_TAG] = json.dumps(
            sorted(f"{s.channel_name} / {s.source_name}" for s in picked), ensure_ascii=False
        )
    return tags


def channels_tag(channels: Iterable[str]) -> dict[str, str]:
    """The channels tag alone (steps that work per channel, not per source)."""
    return {CHANNELS_TAG: json.dumps(sorted(set(channels)), ensure_ascii=False)}


def tag_run(context: dg.AssetExecutionContext, tags: dict[str, str]) -> None:
    """Add the tags the run lacks or holds with another value (one storage write, none when all are there):
    a run launched from the UI gets no tags from us before its steps run."""
    current = context.run.tags
    missing = {k: v for k, v in tags.items() if current.get(k) != v}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)


def database_metadata(database: str | os.PathLike[str]) -> dict[str, object]:
    """The materialization metadata entry naming the file (a path the UI shows as one)."""
    return {DATABASE_KEY: dg.MetadataValue.path(database_path(database))}
