"""`usersnap-channels themes`, `themes rename` and `search`: the channel's themes from the terminal."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from usersnap_channels.cli.common import Command, Group, UsageProblem, dagster_home, db, err, example, out
from usersnap_channels.partitions import utc_today
from usersnap_channels.themes.trends import format_growth, top_themes, unassigned_share
from usersnap_channels.warehouse import themes as store

themes_app = typer.Typer(
    help="Recompute every channel's themes (ids of surviving themes kept) and print the top ones.",
    invoke_without_command=True,
    no_args_is_help=False,
    cls=Group,
    epilog=example('usersnap-channels themes --channel "Product feedback" --top 5'),
)

ChannelFilter = Annotated[str | None, typer.Option("--channel", help="Only this channel.")]


@themes_app.callback()
def themes(
    ctx: typer.Context,
    channel: ChannelFilter = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Themes to print per channel.")] = 10,
) -> None:
    """Recompute the themes of every channel (or one) on the stored embeddings and print the top themes."""
    if ctx.invoked_subcommand is not None:
        return
    from usersnap_channels.cli.sync import ThemesFailed, run_themes  # Dagster loads lazily

    channels = _channels(channel)
    try:
        run_themes(instance_home=dagster_home(), channel=channel, show_progress=sys.stdout.isatty())
    except ThemesFailed as exc:
        err().print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    with db(read_only=True) as con:
        for name in channels:
            print_channel(con, name, top)


def _channels(channel: str | None) -> list[str]:
    with db(read_only=True) as con:
        known = store.channels_in(con)
    if channel is not None and channel not in known:
        listing = ", ".join(known) or "none with data points yet"
        raise UsageProblem(f"No channel '{channel}' with data points (channels: {listing}).")
    if not known:
        raise UsageProblem("No data points yet: run `usersnap-channels sync` first.")
    return [channel] if channel else known


def print_channel(con, channel: str, top: int) -> None:
    """The channel's top themes: id, label, size, share, 7-day growth, keywords."""
    summaries = top_themes(con, channel, utc_today())
    table = Table(
        "id",
        "theme",
        "size",
        "share",
        "7-day growth",
        "keywords",
        title=f"Channel: {channel} — {len(summaries)} themes, {unassigned_share(con, channel):.1%} unassigned",
        title_justify="left",
    )
    for t in summaries[:top]:
        label = t.label + (" ↑ emerging" if t.emerging else "")
        table.add_row(
            str(t.theme_id), label, str(t.size), f"{t.share:.1%}", format_growth(t.growth), ", ".join(t.keywords[:5])
        )
    out().print(table)


@themes_app.command(
    "rename",
    cls=Command,
    epilog=example('usersnap-channels themes rename 3 "Checkout errors" --channel "Product feedback"'),
)
def rename(
    theme_id: Annotated[int, typer.Argument(help="The theme's id (first column of `themes`).")],
    label: Annotated[str, typer.Argument(help="The new name; an empty string goes back to the automatic one.")],
    channel: Annotated[str, typer.Option("--channel", help="The theme's channel.")],
) -> None:
    """Give a theme a name of your own; it survives every recompute."""
    with db() as con:
        found = con.execute(
            "SELECT label FROM themes WHERE channel_name = ? AND theme_id = ?", [channel, theme_id]
        ).fetchone()
        if found is None:
            raise UsageProblem(f"No theme {theme_id} in channel '{channel}': see `usersnap-channels themes`.")
        store.rename_theme(con, channel, theme_id, label.strip())
    out().print(f"Theme {theme_id} of '{channel}' is now called '{label.strip() or '(automatic label)'}'.")


def search(
    text: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    channel: ChannelFilter = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many data points.")] = 10,
) -> None:
    """Semantic search: the data points closest in meaning to TEXT, with their links to Usersnap."""
    from usersnap_channels.themes.service import nearest

    if not text.strip():
        raise UsageProblem("Give a text to search for.")
    with db(read_only=True) as con:
        hits = nearest(con, text, channel=channel, limit=limit)
    table = Table("similarity", "channel", "source", "submitted (UTC)", "text", "link", title=f"Closest to {text!r}")
    for similarity, channel_name, source, submitted, body, link in hits:
        snippet = " ".join(body.split())
        table.add_row(
            f"{similarity:.2f}",
            channel_name,
            source,
            f"{submitted:%Y-%m-%d %H:%M}",
            snippet[:100] + ("…" if len(snippet) > 100 else ""),
            link or "",
        )
    out().print(table)
