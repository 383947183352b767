"""`make demo`: the whole product end to end against the bundled local Usersnap server.

Starts the dev server, connects one channel to two Usersnap workspaces (several projects, 90 days),
syncs through Dagster, prints the status and an analyst's query, and says how to open the Dagster UI.
Everything lands in `.demo/` (DuckDB file, dev keys) and the project's local Dagster instance.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from usersnap_channels.devserver.process import DevServerProcess

DEMO_DIR = Path(".demo")
CHANNEL = "Product feedback"

ANALYST_QUERY = """
SELECT project_name,
       count(*)                                             AS data_points,
       count(*) FILTER (WHERE status = 'open')              AS still_open,
       count(*) FILTER (WHERE list_contains(tags, 'Bug'))   AS tagged_bug,
       round(avg(try_cast(f.value AS DOUBLE)), 2)           AS avg_rating
FROM data_points dp
LEFT JOIN data_point_fields f
       ON f.source_id = dp.source_id AND f.feedback_id = dp.feedback_id
      AND f.origin = 'form' AND f.name = 'How would you rate this page?'
WHERE submitted_at >= now() - INTERVAL 30 DAY
GROUP BY project_name
ORDER BY data_points DESC
"""


def _cli() -> str:
    return str(Path(sys.executable).with_name("usersnap-channels"))


def _run(console: Console, env: dict[str, str], *args: str) -> None:
    console.print(f"\n$ usersnap-channels {shlex.join(args)}", style="bold", markup=False, highlight=False)
    result = subprocess.run([_cli(), *args], env=env)
    if result.returncode != 0:
        raise SystemExit(f"demo step failed: usersnap-channels {' '.join(args)} (exit {result.returncode})")


def main() -> None:
    console = Console(soft_wrap=True)
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    DEMO_DIR.mkdir()
    env_file = DEMO_DIR / "dev.env"
    console.print("[bold]Starting the local Usersnap server[/bold] (2 workspaces, 5 projects, 6 months of feedback)")
    with open(DEMO_DIR / "dev-server.log", "w") as log, DevServerProcess(env_file=env_file, log=log) as server:
        keys = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        env = {
            **os.environ,
            **keys,
            "USERSNAP_BASE_URL": server.base_url,
            "USERSNAP_CHANNELS_DB": str(DEMO_DIR / "channels.duckdb"),
        }
        _connect_sources(console, env)
        _run(console, env, "sync")
        _run(console, env, "status")
        _show_query(console, env["USERSNAP_CHANNELS_DB"])
        _run(console, env, "search", "the app crashes when I pay", "--limit", "5")
        _run(console, env, "themes", "--channel", CHANNEL)
        report = DEMO_DIR / "reports" / "product-feedback.html"
        _run(console, env, "report", "--channel", CHANNEL, "--out", str(report))
    _print_next_steps(console, report)


def _connect_sources(console: Console, env: dict[str, str]) -> None:
    """Check both dev keys, then connect their projects to the demo channel (as a user would)."""
    for workspace in ("ACME", "GLOBEX"):
        _run(console, env, "projects", *_keys(workspace))
    acme_projects = ("--project", "Web App", "--project", "Mobile App", "--project", "Checkout")
    _run(console, env, "connect", "--channel", CHANNEL, "--source", "Acme workspace", *_keys("ACME"),
         *acme_projects, "--backfill", "90d")  # fmt: skip
    _run(console, env, "connect", "--channel", CHANNEL, "--source", "Globex workspace", *_keys("GLOBEX"),
         "--all-projects", "--backfill", "90d")  # fmt: skip


def _keys(workspace: str) -> tuple[str, ...]:
    """The flags naming a dev workspace's two key variables (their values stay in the environment)."""
    return ("--jwt-id-env", f"{workspace}_JWT_ID", "--jwt-secret-env", f"{workspace}_JWT_SECRET")


def _print_next_steps(console: Console, report: Path) -> None:
    """Where the report is, and how to look at the result in the Dagster UI and in DuckDB."""
    console.print(
        f"\n[bold]The report[/bold] (one file, opens offline, safe to share): {report.resolve()}\n"
        f"  open it in a browser, e.g. xdg-open {report}"
    )
    console.print(
        "\n[bold]Open the result in the Dagster UI[/bold] (assets, partitions, runs of this demo):\n"
        f"  USERSNAP_CHANNELS_DB={DEMO_DIR}/channels.duckdb make dev     # then browse http://127.0.0.1:3000\n"
        "To watch the sync sensor pick up new feedback, run the dev server (same keys as the demo) first:\n"
        f"  .venv/bin/usersnap-channels dev-server --env-file {DEMO_DIR}/dev.env &\n"
        f"  set -a; . {DEMO_DIR}/dev.env; set +a; USERSNAP_CHANNELS_DB={DEMO_DIR}/channels.duckdb make dev\n"
        "Query the data yourself (the snapshot, refreshed after each sync, never blocks one):\n"
        f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{DEMO_DIR}/channels.snapshot.duckdb', "
        "read_only=True).sql('FROM data_points LIMIT 5'))\""
    )


def _show_query(console: Console, database: str) -> None:
    console.print("\n[bold]An analyst's query[/bold] (last 30 days per project):")
    console.print(ANALYST_QUERY.strip(), style="dim", highlight=False)
    con = duckdb.connect(database, read_only=True)
    try:
        rel = con.sql(ANALYST_QUERY)
        table = Table(*rel.columns)
        for row in rel.fetchall():
            table.add_row(*("" if v is None else str(v) for v in row))
    finally:
        con.close()
    console.print(table)


if __name__ == "__main__":
    main()
