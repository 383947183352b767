"""The environment Dagster reads when it creates and runs this project's runs, set from one place.

Dagster takes these two settings from environment variables only, read by whichever process writes the
events: planned events come from the process that *creates* a run (the CLI's `sync`, the daemon for sensor,
schedule and backfill runs, the webserver for a run launched from the UI), the step events from the process
that *runs* it (the CLI, or a run worker a code server starts, inheriting the code server's environment).
So they are applied by `sync` (`cli/sync.py`), when the definitions load (every code server, and the run
workers it starts), and by `make dev` before the webserver and daemon start
(`python -m usersnap_channels.defs.instance_env dagster dev ...`). A value already in the environment wins.

- `DAGSTER_EVENT_BATCH_SIZE=1000`: the materializations of a multi-day run go to storage in batches; on
  Postgres each batch is ONE insert (184 days: 1 statement instead of 184 connections). SQLite storage
  writes a batch event by event, as before.
- `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1`: ONE "materialization planned" event per asset for a
  range of days, instead of one per day (6 months: 2 events instead of 368). What it changes, read in
  Dagster 1.13's source (`partition_status_cache.build_failed_and_in_progress_partition_subset`): the
  per-partition status of an asset (Failed, In progress) is derived from per-partition planned events whose
  run failed or is still running; a planned event that carries a range has no partition, so the days of a
  failed multi-day run are NOT shown as Failed in the asset's partition bar (they keep their previous state:
  the rows a failed unit keeps in DuckDB), and a running multi-day run does not show its days In progress.
  The run, its step error and the backfill's status still show the failure, the count check's per-day
  results are unaffected, and our own recovery (the sensor and `sync` re-import every day `sync_state` lacks)
  never reads Dagster's partition status. Single-day runs are unchanged.
"""

from __future__ import annotations

import os
import sys

RUN_ENV: dict[str, str] = {
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
}


def apply_run_env() -> dict[str, str]:
    """Set every `RUN_ENV` variable not already set in this process (and so in the processes it starts);
    returns the values in effect."""
    for name, value in RUN_ENV.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in RUN_ENV}


def main(argv: list[str]) -> None:
    """`python -m usersnap_channels.defs.instance_env COMMAND ...`: run COMMAND with the run environment."""
    if not argv:
        raise SystemExit("usage: python -m usersnap_channels.defs.instance_env COMMAND [ARGS...]")
    apply_run_env()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
