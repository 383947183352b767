"""`usersnap-channels report`: one self-contained HTML page of a channel's themes and trends, to share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from usersnap_channels import settings
from usersnap_channels.cli.common import UsageProblem, db, out
from usersnap_channels.partitions import utc_today
from usersnap_channels.report.ratings import named_fields
from usersnap_channels.warehouse import report as store


def report(
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only this channel (default: every channel, with a selector).")
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="The HTML file to write (default: <reports folder>/<channel>.html, see the README)."
        ),
    ] = None,
    rating_field: Annotated[
        list[str] | None,
        typer.Option("--rating-field", help="A form field to show as a rating or NPS (repeatable; replaces the rule)."),
    ] = None,
) -> None:
    """Write the channel's themes and trends as one HTML file that opens offline, and print its path."""
    from usersnap_channels.report.render import build, write  # Altair and the runtime load only here

    config = settings.load()
    with db(read_only=True) as con:
        known = store.channels(con)
        if channel is not None and channel not in known:
            raise UsageProblem(f"No channel '{channel}' (channels: {', '.join(known) or 'none yet'}).")
        if not known:
            raise UsageProblem("No channel yet: run `usersnap-channels connect` and `sync` first.")
        picked = [channel] if channel else known
        page = build(
            con, picked, today=utc_today(), rating_names=named_fields(rating_field or [], config.report_rating_fields)
        )
    path = write(page.html, out_file or settings.report_path(channel))
    themes = sum(len(r.themes) for r in page.channels)
    out().print(f"Report of {len(picked)} channel(s), {themes} theme(s): {path}", markup=False)
