"""`usersnap-channels`: connect Usersnap sources to channels and keep them in sync through Dagster.

Exit codes: 0 success, 1 a run or sync failed, 2 bad usage or rejected credentials.
"""

from __future__ import annotations

import sys
import warnings
from datetime import UTC, datetime
from typing import Annotated, Any

import duckdb
import typer
from rich.table import Table

from usersnap_channels import settings
from usersnap_channels.cli.common import Command, Group, UsageProblem, dagster_home, example
from usersnap_channels.cli.common import db as _db
from usersnap_channels.cli.common import err as _err
from usersnap_channels.cli.common import out as _out
from usersnap_channels.cli.report import report
from usersnap_channels.cli.themes import search, themes_app
from usersnap_channels.defs.resources import MissingCredentials, UsersnapResource, read_credentials
from usersnap_channels.ingest.rows import project_rows
from usersnap_channels.partitions import BACKFILL_WINDOWS, utc_today, window_start
from usersnap_channels.themes.embedding import ModelFilesError
from usersnap_channels.usersnap.client import (
    InvalidCredentials,
    UsersnapClient,
    UsersnapError,
    UsersnapUnreachable,
    UsersnapWrongBaseUrl,
)
from usersnap_channels.warehouse import themes as themes_store
from usersnap_channels.warehouse.feedback import replace_usersnap_projects
from usersnap_channels.warehouse.registry import (
    Project,
    RegistryError,
    Source,
    connect_source,
    data_point_counts,
    delete_source,
    get_source,
    list_sources,
    record_sync,
    set_disconnected,
    update_credentials,
)
from usersnap_channels.warehouse.snapshot import refresh_snapshot, snapshot_path

app = typer.Typer(
    name="usersnap-channels",
    help="Import Usersnap feedback into Channels (DuckDB), orchestrated by Dagster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)

DISCONNECT_QUESTION = (
    "Are you sure you want to disconnect {source} from {channel}? This will immediately stop the Channel from "
    "ingesting any new data. Any data already imported from this source will remain in the Channel."
)
DELETE_QUESTION = (
    "Are you sure you want to delete {source} from {channel}? This will delete all associated data points. "
    "This is permanent and cannot be undone."
)


# -- shared plumbing ------------------------------------------------------------------------------


def _client(jwt_id_env: str, jwt_secret_env: str) -> UsersnapClient:
    """A client for interactive commands: few retries, so a wrong URL fails in seconds, not minutes."""
    resource = UsersnapResource(max_transient_retries=3, backoff_base_s=0.3, connect_timeout_s=5.0)
    return resource.client(jwt_id_env, jwt_secret_env)


def _check_credentials(jwt_id_env: str, jwt_secret_env: str) -> list[dict[str, Any]]:
    with _client(jwt_id_env, jwt_secret_env) as client:
        return client.list_projects()


def _confirm(question: str, assume_yes: bool) -> bool:
    """y/N on the terminal; anything but y/yes (or no input at all) cancels."""
    if assume_yes:
        return True
    sys.stdout.write(f"{question} [y/N]: ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


# -- commands -------------------------------------------------------------------------------------

JwtIdEnv = Annotated[str, typer.Option("--jwt-id-env", help="Name of the environment variable holding the JWT ID.")]
JwtSecretEnv = Annotated[
    str, typer.Option("--jwt-secret-env", help="Name of the environment variable holding the JWT Secret.")
]
ChannelOpt = Annotated[str, typer.Option("--channel", help="Channel name.")]
SourceOpt = Annotated[str, typer.Option("--source", help="Source name (unique within its channel).")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (for scripts).")]


@app.command(
    "projects",
    cls=Command,
    epilog=example("usersnap-channels projects --jwt-id-env EU_JWT_ID --jwt-secret-env EU_JWT_SECRET"),
)
def projects(
    jwt_id_env: JwtIdEnv = settings.DEFAULT_JWT_ID_ENV,
    jwt_secret_env: JwtSecretEnv = settings.DEFAULT_JWT_SECRET_ENV,
) -> None:
    """Check the credentials and list the projects the key can see."""
    found = _check_credentials(jwt_id_env, jwt_secret_env)
    table = Table("project_id", "name", "feedback", title=f"{len(found)} Usersnap project(s)")
    for p in sorted(found, key=lambda p: str(p.get("name"))):
        table.add_row(str(p.get("project_id")), str(p.get("name")), str(p.get("feedback_count", "")))
    _out().print(table)


def _resolve_projects(wanted: list[str], visible: list[dict[str, Any]]) -> list[Project]:
    by_id = {str(p["project_id"]): p for p in visible}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for p in visible:
        by_name.setdefault(str(p.get("name")), []).append(p)
    picked: list[Project] = []
    unknown: list[str] = []
    for w in wanted:
        match = by_id.get(w) or (by_name[w][0] if len(by_name.get(w, [])) == 1 else None)
        if match is None:
            unknown.append(w)
        elif all(p.project_id != str(match["project_id"]) for p in picked):
            picked.append(Project(str(match["project_id"]), str(match.get("name"))))
    if unknown:
        listing = "\n".join(f"  {p['project_id']}  {p.get('name')}" for p in visible) or "  (none)"
        raise UsageProblem(
            f"Unknown project {', '.join(repr(u) for u in unknown)} (give an id or the exact name; a name shared by "
            f"two projects needs the id). The key can see:\n{listing}"
        )
    return picked


PICKER_HELP = (
    "Type the numbers of the projects to import, separated by commas (e.g. 1,3), or 'all' for every project. "
    "Ctrl-C cancels; nothing is connected until you answer."
)


def _parse_pick(answer: str, count: int) -> list[int] | None:
    """Indexes (0-based) picked by an answer such as '1, 3' or 'all'; None when it is not one."""
    text = answer.strip().lower()
    if text == "all":
        return list(range(count))
    parts = [x for x in text.replace(" ", "").split(",") if x]
    if not parts or not all(x.isdigit() and 1 <= int(x) <= count for x in parts):
        return None
    return list(dict.fromkeys(int(x) - 1 for x in parts))


def _pick_interactively(visible: list[dict[str, Any]]) -> list[Project]:
    """The terminal picker: asks again after an answer it cannot read (a typo should not end the command)."""
    console = _out()
    for i, p in enumerate(visible, 1):
        console.print(
            f"  [{i}] {p.get('name')}  ({p.get('feedback_count', '?')} items)  {p['project_id']}", markup=False
        )
    while True:
        answer = typer.prompt("Projects to import (numbers separated by commas, 'all', or ? for help)")
        if answer.strip() == "?":
            console.print(PICKER_HELP, markup=False)
            continue
        picked = _parse_pick(answer, len(visible))
        if picked is not None:
            return [Project(str(visible[i]["project_id"]), str(visible[i].get("name"))) for i in picked]
        console.print(
            f"Not a list of project numbers between 1 and {len(visible)}, nor 'all': {answer.strip()!r}. "
            "Try again (? for help).",
            markup=False,
        )


@app.command(
    "connect",
    cls=Command,
    epilog=example(
        'usersnap-channels connect --channel "Product feedback" --source "Main workspace" '
        '--project "Web App" --backfill 90d'
    ),
)
def connect(
    channel: ChannelOpt,
    source: SourceOpt,
    backfill: Annotated[str, typer.Option("--backfill", help="Backfill window: 7d, 30d, 90d or 6m.")],
    project: Annotated[
        list[str] | None, typer.Option("--project", help="Project id or exact name; repeat for several.")
    ] = None,
    all_projects: Annotated[bool, typer.Option("--all-projects", help="Import every project the key sees.")] = False,
    jwt_id_env: JwtIdEnv = settings.DEFAULT_JWT_ID_ENV,
    jwt_secret_env: JwtSecretEnv = settings.DEFAULT_JWT_SECRET_ENV,
) -> None:
    """Check the credentials, pick projects and register a source in a channel."""
    for flag, value in (("--channel", channel), ("--source", source)):
        if not value.strip():
            raise UsageProblem(f"{flag} must not be blank: give the {flag[2:]} a name.")
    if backfill not in BACKFILL_WINDOWS:
        raise UsageProblem(f"--backfill must be one of {', '.join(BACKFILL_WINDOWS)}, not {backfill!r}.")
    if project and all_projects:
        raise UsageProblem("Give either --project (one or more) or --all-projects, not both.")
    visible = _check_credentials(jwt_id_env, jwt_secret_env)
    if not visible:
        raise UsageProblem("The key can see no project in Usersnap: nothing to connect.")
    if all_projects:
        picked = [Project(str(p["project_id"]), str(p.get("name"))) for p in visible]
    elif project:
        picked = _resolve_projects(project, visible)
    elif sys.stdin.isatty():
        picked = _pick_interactively(visible)
    else:
        raise UsageProblem("Pick projects with --project (repeat for several) or --all-projects.")
    if not picked:
        raise UsageProblem("No project picked: nothing to connect.")
    today = utc_today()
    start = window_start(backfill, today)
    with _db() as con:
        registered = connect_source(
            con,
            channel=channel,
            source=source,
            jwt_id_env=jwt_id_env,
            jwt_secret_env=jwt_secret_env,
            backfill_window=backfill,
            window_start=start,
            projects=picked,
        )
        rows = project_rows(registered.source_id, visible, datetime.now(UTC))
        replace_usersnap_projects(con, registered.source_id, rows)
    counts = {str(p["project_id"]): p.get("feedback_count") for p in visible}
    console = _out()
    console.print(
        f"Connected source '{source}' to channel '{channel}' ({registered.source_id}). It will import "
        f"{len(picked)} project(s) from {start.isoformat()} (UTC, window {backfill}) onwards:"
    )
    for p in picked:
        console.print(f"  - {p.name} ({p.project_id}): {counts.get(p.project_id, '?')} items in Usersnap")
    console.print("Run `usersnap-channels sync` to import now (or let the Dagster sensor do it).")


@app.command(
    "sync", cls=Command, epilog=example('usersnap-channels sync --channel "Product feedback" --source "Main workspace"')
)
def sync(
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
) -> None:
    """Bring every connected source up to date through Dagster (backfill window first, then anything new)."""
    with _db() as con:  # first: a database that cannot be opened is the message, before Dagster loads
        sources = list_sources(con, channel=channel, source=source, connected_only=True)
        if not sources and (channel or source):
            _no_connected_match(con, channel, source)
    from usersnap_channels.cli.sync import SyncOutcome, run_sync  # Dagster loads lazily: other commands stay quick

    if not sources:
        _out().print("No connected source to sync. Connect one with `usersnap-channels connect`.")
        return
    home = dagster_home()
    ready = _preflight(sources)
    if ready:
        outcome = run_sync(ready, instance_home=home, show_progress=sys.stdout.isatty())
    else:
        outcome = SyncOutcome(success=False)
    console = _out()
    with _db(read_only=True) as con:
        refreshed = {s.source_id: s for s in list_sources(con)}
        counts = data_point_counts(con)
    failed = [
        refreshed[s.source_id] for s in sources if refreshed.get(s.source_id) and refreshed[s.source_id].last_error
    ]
    for s in failed:
        _err().print(s.last_error, style="red", markup=False, highlight=False)
    total = sum(counts.get(s.source_id, 0) for s in sources)
    verdict = "failed" if not outcome.success else "done"
    console.print(
        f"Sync {verdict}: {len(sources) - len(failed)}/{len(sources)} source(s) up to date, "
        f"{outcome.items} item(s) fetched from {outcome.units} (source, project, day) unit(s), "
        f"{total} data point(s) in total, in {outcome.seconds:.1f}s."
    )
    if not outcome.success and outcome.run_ids:
        console.print(f"Details: run {outcome.run_ids[-1]} in the Dagster UI (`make dev`).")
    if len(ready) < len(sources):
        raise typer.Exit(2)  # a source's key variables are not set: configuration, for the user to fix
    if not outcome.success:
        raise typer.Exit(1)


def _no_connected_match(con: duckdb.DuckDBPyConnection, channel: str | None, source: str | None) -> None:
    """Raise the error for a --channel/--source filter without a connected source: unknown, or disconnected
    (asked for by name, a disconnected source is a mistake to point out, not an empty success)."""
    matches = list_sources(con, channel=channel, source=source)
    if not matches:
        if channel and source:
            get_source(con, channel, source)  # a clear error when it does not exist at all
        _unknown_channel_or_source(con, channel, source)
    names = " and ".join(s.label for s in matches)
    raise UsageProblem(
        f"{names[0].upper()}{names[1:]} {'is' if len(matches) == 1 else 'are'} disconnected: sync skips "
        "disconnected sources. Run `usersnap-channels connect` with the same --channel and --source to resume."
    )


def _unknown_channel_or_source(con: duckdb.DuckDBPyConnection, channel: str | None, source: str | None) -> None:
    """Raise the error for a --channel/--source filter that matches no source at all."""
    known = [f"{s.channel_name} / {s.source_name}" for s in list_sources(con)]
    what = f"channel '{channel}'" if channel else f"source '{source}' in any channel"
    hint = f" Known sources: {', '.join(known)}." if known else " No source is connected yet: run `connect`."
    raise RegistryError(f"No {what}.{hint}")


def _preflight(sources: list[Source]) -> list[Source]:
    """The sources a sync can run: those whose key variables are set (the others get a `last_error` naming
    the missing variables). Fails fast, before any run, when Usersnap cannot be reached at all (a wrong
    USERSNAP_BASE_URL or no network), instead of every day retrying for minutes."""
    ready: list[Source] = []
    missing: dict[str, str] = {}
    for s in sources:
        try:
            read_credentials(s.jwt_id_env, s.jwt_secret_env)
            ready.append(s)
        except MissingCredentials as exc:
            missing[s.source_id] = f"Cannot sync {s.label}: {exc}"
    if missing:
        with _db() as con:
            for source_id, message in missing.items():
                record_sync(con, source_id, error=message)
    if ready:
        try:
            _check_credentials(ready[0].jwt_id_env, ready[0].jwt_secret_env)
        except UsersnapUnreachable as exc:
            raise UsageProblem(
                f"Cannot reach Usersnap at {settings.base_url()} ({exc}). Check USERSNAP_BASE_URL and your "
                "network; nothing was synced."
            ) from None
        except UsersnapWrongBaseUrl as exc:
            raise UsageProblem(f"{exc}; nothing was synced.") from None
        except UsersnapError:
            pass  # a refused key or a struggling Usersnap: the runs report those per source
    return ready


@app.command(
    "status",
    cls=Command,
    epilog=example("usersnap-channels status   (reads $USERSNAP_CHANNELS_DB, else data/channels.duckdb)"),
)
def status() -> None:
    """Every channel and source: state, window, projects, data points, last sync and last error."""
    path = settings.db_path().resolve()
    console = _out()
    if not path.exists():  # a look must not create a database (a typo in USERSNAP_CHANNELS_DB would)
        console.print(
            f"No channels database at {path}: nothing is connected there yet. Connect a source with "
            "`usersnap-channels connect`, or point USERSNAP_CHANNELS_DB at your database.",
            markup=False,
        )
        return
    with _db(read_only=True) as con:
        sources = list_sources(con)
        counts = data_point_counts(con)
        channels = [r[0] for r in con.execute("SELECT channel_name FROM channels ORDER BY 1").fetchall()]
    channels = [ch for ch in channels if any(s.channel_name == ch for s in sources)]  # older files' empty ones
    console.print(f"Channels database: {path}", markup=False)
    if not channels:
        console.print("No channel yet. Connect a source with `usersnap-channels connect`.")
        return
    for ch in channels:
        table = Table(
            "source",
            "status",
            "window",
            "projects",
            "data points",
            "last synced (UTC)",
            "last error",
            title=f"Channel: {ch}",
            title_justify="left",
            show_lines=False,
        )
        for s in (s for s in sources if s.channel_name == ch):
            table.add_row(
                s.source_name,
                s.status,
                f"{s.backfill_window} from {s.window_start.isoformat()}",
                ", ".join(p.name for p in s.projects),
                str(counts.get(s.source_id, 0)),
                s.last_synced_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if s.last_synced_at else "never",
                s.last_error or "",
            )
        console.print(table)


@app.command(
    "update-credentials",
    cls=Command,
    epilog=example(
        'usersnap-channels update-credentials --channel "Product feedback" --source "Main workspace" '
        "--jwt-id-env NEW_JWT_ID --jwt-secret-env NEW_JWT_SECRET"
    ),
)
def update_credentials_cmd(
    channel: ChannelOpt,
    source: SourceOpt,
    jwt_id_env: JwtIdEnv,
    jwt_secret_env: JwtSecretEnv,
) -> None:
    """Point a source at new credential variables after its key was rotated (they are checked first)."""
    with _db() as con:
        existing = get_source(con, channel, source)
    _check_credentials(jwt_id_env, jwt_secret_env)
    with _db() as con:
        update_credentials(con, existing, jwt_id_env, jwt_secret_env)
    _out().print(
        f"Source '{source}' of channel '{channel}' now reads its key from ${jwt_id_env} / ${jwt_secret_env}; "
        "the next sync uses it."
    )


def _confirmed_source(channel: str, source: str, question: str, assume_yes: bool) -> Source | None:
    """The source, once the user confirmed the question about it; None (and nothing changed) otherwise."""
    with _db() as con:
        existing = get_source(con, channel, source)
    if not _confirm(question.format(source=source, channel=channel), assume_yes):
        _out().print("Cancelled: nothing changed.")
        return None
    return existing


@app.command(
    "disconnect",
    cls=Command,
    epilog=example('usersnap-channels disconnect --channel "Product feedback" --source "Main workspace" --yes'),
)
def disconnect(channel: ChannelOpt, source: SourceOpt, yes: YesOpt = False) -> None:
    """Stop ingesting from a source; its data stays in the channel."""
    with _db() as con:
        current = get_source(con, channel, source)
    if not current.connected:
        since = f" since {current.disconnected_at:%Y-%m-%d %H:%M} UTC" if current.disconnected_at else ""
        _out().print(
            f"'{source}' of '{channel}' is already disconnected{since}: nothing changed. Its data points remain; "
            "`connect` it again to resume, or `delete` it to remove them."
        )
        return
    existing = _confirmed_source(channel, source, DISCONNECT_QUESTION, yes)
    if existing is None:
        return
    with _db() as con:
        set_disconnected(con, existing)
    _out().print(f"Disconnected '{source}' from '{channel}'. Its data points remain in the channel.")


@app.command(
    "delete",
    cls=Command,
    epilog=example('usersnap-channels delete --channel "Product feedback" --source "Main workspace" --yes'),
)
def delete(channel: ChannelOpt, source: SourceOpt, yes: YesOpt = False) -> None:
    """Remove a source and every data point it imported."""
    existing = _confirmed_source(channel, source, DELETE_QUESTION, yes)
    if existing is None:
        return
    with _db() as con:
        deleted = delete_source(con, existing)
        themes_store.refresh_theme_stats(con, channel)  # its data points leave their themes and trends
        themes_store.refresh_trends(con, channel)
        if snapshot_path(settings.db_path()).exists():  # the analysts' copy must not keep what was deleted
            refresh_snapshot(con, settings.db_path())
    _out().print(
        f"Deleted '{source}' from '{channel}': {deleted.get('data_points', 0)} data point(s) and "
        f"{deleted.get('raw_feedback', 0)} raw item(s) removed."
    )
    if deleted.get("channels"):
        _out().print(f"Channel '{channel}' had no other source and was removed, with its themes.")


app.add_typer(themes_app, name="themes")
app.command(cls=Command, epilog=example('usersnap-channels search "checkout button does nothing" --limit 5'))(search)
app.command(cls=Command, epilog=example('usersnap-channels report --channel "Product feedback" --out feedback.html'))(
    report
)


@app.command("dev-server", cls=Command, epilog=example("usersnap-channels dev-server --port 8765 --env-file .dev.env"))
def dev_server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the generated workspaces and feedback.")] = 42,
    env_file: Annotated[
        str | None, typer.Option(help="Write the dev keys as NAME=value lines here (for a demo to source).")
    ] = None,
    days: Annotated[int, typer.Option(help="Days of generated feedback up to now.")] = 190,
    items_per_day: Annotated[float, typer.Option(help="Average items per project and day.")] = 6.0,
) -> None:
    """Run the bundled local Usersnap server (fake keys, generated feedback) for demos and tests."""
    from usersnap_channels.devserver import serve

    serve(host="127.0.0.1", port=port, seed=seed, env_file=env_file, days=days, items_per_day=items_per_day)


def main() -> None:
    """Console-script entry: known problems become one clear message and exit code 2, never a traceback."""
    warnings.filterwarnings("ignore", module="dagster")
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # without standalone mode click returns a command's Exit code
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err().print("Aborted.")
        sys.exit(1)
    except InvalidCredentials as exc:
        _err().print(str(exc), highlight=False, markup=False)
        sys.exit(2)
    except ModelFilesError as exc:
        _err().print(f"Error: the embedding model cannot be loaded. {exc}", highlight=False, markup=False)
        sys.exit(2)
    except (UsageProblem, RegistryError, MissingCredentials, ValueError) as exc:
        _err().print(f"Error: {exc}", highlight=False, markup=False)
        sys.exit(2)
    except UsersnapError as exc:
        _err().print(
            f"Error talking to Usersnap at {settings.base_url()}: {exc}\nCheck USERSNAP_BASE_URL and your network.",
            highlight=False,
            markup=False,
        )
        sys.exit(2)
    except Exception as exc:  # click's usage errors (typer vendors its own click: match by shape, not class)
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise


if __name__ == "__main__":
    main()
