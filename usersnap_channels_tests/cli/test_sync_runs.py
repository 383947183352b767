"""A `sync` run is a run of its code location: the Dagster UI finds it on its job's page and on the Overview
timeline (asked through the webserver's own GraphQL schema over the project's workspace.yaml), and it names
the DuckDB file and the sources it touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from usersnap_channels.defs.compat import LOCATION_NAME, REPOSITORY_NAME
from usersnap_channels.defs.jobs import TRIGGER_TAG
from usersnap_channels.defs.provenance import CHANNELS_TAG, DATABASE_KEY, SNAPSHOT_KEY, SOURCES_TAG
from usersnap_channels.devserver import DevServer
from usersnap_channels.ingest.importer import PROCESS_POOL_MIN_UNITS
from usersnap_channels.warehouse.snapshot import snapshot_path
from usersnap_channels_tests.conftest import REPO, run_cli
from usersnap_channels_tests.helpers import query

ACME = ("--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET")

#: What the job page asks for (ui-core `PipelineRunsRoot`: the job's runs in its repository).
JOB_RUNS = """
query JobRuns($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { name runs { runId } }
  }
}
"""
#: What the Overview timeline reads of a run (ui-core `RunTimelineFragment`): runs without a repository
#: origin are left out of it.
RUN_ORIGIN = """
query RunOrigin($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { pipelineName repositoryOrigin { repositoryName repositoryLocationName } }
  }
}
"""


def test_a_cli_sync_run_shows_on_its_jobs_page_and_the_timeline(env, instance, devserver: DevServer) -> None:
    connected = run_cli(
        "connect", "--channel", "Product feedback", "--source", "Acme", *ACME, "--all-projects",
        "--backfill", "7d", env=env, cwd=REPO,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    synced = run_cli("sync", env=env, cwd=REPO)
    assert synced.returncode == 0, synced.stderr
    runs = instance.get_runs(filters=dg.RunsFilter(tags={TRIGGER_TAG: "cli-sync"}))
    assert len(runs) == 1
    run = runs[0]
    assert run.status == dg.DagsterRunStatus.SUCCESS

    # the run storage query of the job page, as dagster_graphql builds it
    label = f"{REPOSITORY_NAME}@{LOCATION_NAME}"
    by_job = instance.get_runs(filters=dg.RunsFilter(job_name="usersnap_sync_job", tags={REPOSITORY_LABEL_TAG: label}))
    assert [r.run_id for r in by_job] == [run.run_id]

    # and the UI's own queries, over the code location of workspace.yaml
    with define_out_of_process_context(str(REPO / "workspace.yaml"), None, instance) as context:
        selector = {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY_NAME,
            "pipelineName": "usersnap_sync_job",
        }
        page = execute_dagster_graphql(context, JOB_RUNS, {"selector": selector}).data["pipelineOrError"]
        assert page["__typename"] == "Pipeline", page
        assert run.run_id in [r["runId"] for r in page["runs"]]
        origin = execute_dagster_graphql(context, RUN_ORIGIN, {"runId": run.run_id}).data["runOrError"]
        assert origin["pipelineName"] == "usersnap_sync_job"
        assert origin["repositoryOrigin"] == {
            "repositoryName": REPOSITORY_NAME,
            "repositoryLocationName": LOCATION_NAME,
        }

    # which file, which channel and source, and the snapshot it refreshed
    db = env["USERSNAP_CHANNELS_DB"]
    assert run.tags[DATABASE_KEY] == os.path.abspath(db)
    assert json.loads(run.tags[CHANNELS_TAG]) == ["Product feedback"]
    assert json.loads(run.tags[SOURCES_TAG]) == ["Product feedback / Acme"]
    assert instance.get_run_by_id(run.run_id).tags[SNAPSHOT_KEY] == os.path.abspath(snapshot_path(db))


def test_a_sync_process_leaves_pandas_and_the_clustering_out(env, devserver: DevServer) -> None:
    """The `sync` process holds what the import needs and no more (its peak RSS is a target): the fetch workers
    build the Arrow rows, and the Dagster process builds its few small tables with DuckDB, never Arrow from
    Python lists (pyarrow imports pandas for that, ≈ 40 MB resident); the themes service (scipy) loads for
    `themes` only. The window is large enough for the fetch workers to be processes, as for any real backfill."""
    connected = run_cli(
        "connect", "--channel", "Product feedback", "--source", "Acme", *ACME, "--all-projects",
        "--backfill", "30d", env=env, cwd=REPO,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    code = (
        "import sys\nfrom usersnap_channels.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print([m for m in ('pandas', 'scipy', 'sknetwork', 'onnxruntime') if m in sys.modules])"
    )
    synced = subprocess.run(
        [sys.executable, "-c", code, "sync"],
        env={**os.environ, **env, "NO_COLOR": "1"}, capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.strip().splitlines()[-1] == "[]"
    units = query(env["USERSNAP_CHANNELS_DB"], "SELECT count(*) FROM sync_state")[0][0]
    assert units >= PROCESS_POOL_MIN_UNITS  # the import fetched in worker processes
