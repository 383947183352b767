"""What every command shares: the console, the DuckDB file with clear errors, the Dagster instance folder."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from usersnap_channels import settings
from usersnap_channels.warehouse.connection import DatabaseBusy, open_database
from usersnap_channels.warehouse.snapshot import snapshot_path

#: How an analyst keeps a session open without holding up a sync (DuckDB: one writer, and no writer while
#: another process has the file open, even read-only).
_AVOID_LOCKS = (
    "To query while syncs run, open the snapshot {snapshot} instead (read-only, refreshed after every sync, "
    "never in a sync's way), or close your session on the database when you are done."
)


class UsageProblem(Exception):
    """Bad usage or configuration: printed without a traceback, exit code 2."""


def out() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=not sys.stdout.isatty(), highlight=False)


def err() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 160, soft_wrap=True, highlight=False)


def _plain_flags(params: list[Any]) -> list[Any]:
    """Flags take no value, so the help shows none: typer's rich help prints every option's type (`--yes
    <bool>`) unless the option has a metavar; an empty one leaves the column blank."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def example(command_line: str) -> str:
    """A command's epilog: one example a user can copy (the help is where people look first)."""
    return f"Example:  {command_line}"


class Command(TyperCommand):
    """Every command of the CLI: flags shown as `--yes`, not `--yes <bool>`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class Group(TyperGroup):
    """The CLI and its command groups: flags shown as `--yes`, not `--yes <bool>`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


@contextmanager
def db(read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The channels DuckDB file, with clear messages for the usual ways opening it fails."""
    path = settings.db_path()
    if read_only and not path.exists():
        raise UsageProblem(f"No channels database at {path} yet: run `usersnap-channels connect` first.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only file system, a file where a folder should be, no permission
        raise UsageProblem(
            f"Cannot create the folder of the DuckDB file {path} ({exc.strerror or exc}). Point "
            "USERSNAP_CHANNELS_DB at a file in a folder you can write to."
        ) from None
    wait_s = settings.load().lock_timeout_s

    def waiting(holder: str) -> None:
        err().print(
            f"The DuckDB file {path} is held by another program{holder}; waiting up to {wait_s:g} s for it. "
            + _AVOID_LOCKS.format(snapshot=snapshot_path(path)),
            markup=False,
        )

    try:
        con = open_database(str(path), read_only=read_only, wait_s=wait_s, on_wait=waiting)
    except DatabaseBusy as exc:
        raise UsageProblem(
            f"The DuckDB file {path} is locked by another program{exc.holder} (a running sync, or a "
            "tool such as the DuckDB CLI or a notebook holding it open) and was not released within "
            f"{wait_s:g} s (USERSNAP_CHANNELS_LOCK_TIMEOUT_S). Close that program or wait for it, then retry. "
            + _AVOID_LOCKS.format(snapshot=snapshot_path(path))
        ) from None
    except duckdb.IOException as exc:
        raise UsageProblem(
            f"Cannot open the DuckDB file {path}: {exc}. Point USERSNAP_CHANNELS_DB at another file, or move "
            "this one away to start afresh."
        ) from None
    except duckdb.Error as exc:
        raise UsageProblem(
            f"{path} is not a usable DuckDB database ({type(exc).__name__}: {exc}). Point USERSNAP_CHANNELS_DB "
            "at another file, or move this one away to start afresh."
        ) from None
    if read_only and not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'sources'").fetchone():
        con.close()
        raise UsageProblem(
            f"{path} is a DuckDB database but not a channels database (it has no `sources` table). Point "
            "USERSNAP_CHANNELS_DB at the channels database, or run `usersnap-channels connect` to start one."
        )
    try:
        yield con
    finally:
        con.close()


def dagster_home() -> Path:
    """$DAGSTER_HOME, or the project's local instance folder `.dagster_home` (created with the project's
    dagster.yaml) next to workspace.yaml, searching up from the working directory."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
        if not home.is_dir():
            raise UsageProblem(
                f"DAGSTER_HOME is {str(home)!r}, which is not an existing folder: create it (with a dagster.yaml, "
                "e.g. a copy of the project's) or unset DAGSTER_HOME to use the project's .dagster_home."
            )
        return home
    root = next(
        (p for p in (Path.cwd(), *Path.cwd().parents) if (p / "workspace.yaml").exists()),
        Path.cwd(),
    )
    home = root / ".dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        template = root / "dagster.yaml"
        if template.exists():
            shutil.copyfile(template, home / "dagster.yaml")
        else:
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home
