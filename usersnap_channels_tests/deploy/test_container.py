"""The code location's image, built here with no network (the local Debian base and wheelhouse of
deploy/container/, `podman build --network none`) and run: its definitions validate, and `connect` + `sync`
inside it import from the dev server on the host into a DuckDB file on a mounted volume, exactly. The Usersnap
keys reach the containers by environment at run time only; they are in no image layer, build argument or
output. Slow (minutes cold, seconds of build with warm caches): `make test-container`, not in `make test`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import pytest

from usersnap_channels.devserver import DevServer
from usersnap_channels.devserver.process import free_port
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels_tests.conftest import REPO
from usersnap_channels_tests.helpers import query

pytestmark = [pytest.mark.slow, pytest.mark.container]

IMAGE = "localhost/usersnap-channels:test"
# runc, with limits the sandbox allows (crun and podman's default nproc limit fail to start containers here)
FLAGS = ["--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
RUN = ["podman", "run", "--rm", *FLAGS]
IMAGE_UID = 10001  # the Containerfile's `usersnap` user
CHANNEL = "Product feedback"
PROJECTS = ("Web App", "Checkout")


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """`make image OFFLINE=1`'s script, timed (printed with -s; the README quotes the figures)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: `make test-container` installs it (Debian's podman, runc, debootstrap)")
    started = time.monotonic()
    built = subprocess.run(
        [str(REPO / "deploy/container/build.sh")],
        env={**os.environ, "OFFLINE": "1", "IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr[-6000:]
    print(f"\nimage {IMAGE} built in {time.monotonic() - started:.1f} s")
    yield built.stdout.strip()


def podman_run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(
        [*RUN, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    print(f"podman run … {' '.join(args[-2:])}: {time.monotonic() - started:.1f} s")
    return result


def test_the_image_validates_its_definitions_offline(image: str) -> None:
    result = podman_run("--network", "none", image, "dagster", "definitions", "validate", "-w", "workspace.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_connect_and_sync_inside_the_image_import_exactly_what_the_host_dev_server_holds(
    image: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, IMAGE_UID, IMAGE_UID)  # the image runs as its own user, not root
    with DevServer(seed=11, days=10, items_per_day=3.0) as devserver:
        keys = {k: v for k, v in devserver.env().items() if k.startswith("ACME_")}
        env = {**keys, "USERSNAP_BASE_URL": devserver.base_url}
        # values stay in podman's environment: `-e NAME` passes a variable by name only
        common = ["--network", "host", "-v", f"{data}:/data", *(f"-e{name}" for name in env), image]
        picks = [arg for name in PROJECTS for arg in ("--project", name)]
        connect = podman_run(
            *common, "usersnap-channels", "connect", "--channel", CHANNEL, "--source", "Acme",
            "--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET", *picks, "--backfill", "7d",
            env=env,
        )  # fmt: skip
        assert connect.returncode == 0, connect.stdout + connect.stderr
        sync = podman_run(*common, "usersnap-channels", "sync", env=env)
        assert sync.returncode == 0, sync.stdout + sync.stderr

        today = utc_today()
        start = datetime.combine(window_start("7d", today), clock(0), tzinfo=UTC)
        end = datetime.combine(today + timedelta(days=1), clock(0), tzinfo=UTC)
        ws = devserver.workspace("Acme")
        expected = {
            (p["name"], item["feedback_id"])
            for p in ws.projects
            if p["name"] in PROJECTS
            for item in devserver.items(p["project_id"], start, end)
        }

    db = str(data / "channels.duckdb")
    rows = set(query(db, "SELECT project_name, feedback_id FROM data_points"))
    raw = query(db, "SELECT count(*) FROM raw_feedback")[0][0]
    assert rows == expected and len(expected) > 20
    assert raw == len(expected)
    # the themes step ran in the image: the model from the wheelhouse embedded every text
    texts = set(query(db, "SELECT source_id, feedback_id FROM data_points WHERE trim(text) <> ''"))
    embedded = set(query(db, "SELECT source_id, feedback_id FROM data_point_embeddings"))
    assert embedded == texts and texts
    assert query(db, "SELECT source_name, status, last_error FROM sources") == [("Acme", "connected", None)]

    secrets = list(keys.values())
    for output in (connect.stdout + connect.stderr, sync.stdout + sync.stderr):
        assert not any(s in output for s in secrets)
    layers = subprocess.run(
        ["podman", "history", "--no-trunc", "--format", "json", image], capture_output=True, text=True, check=True
    ).stdout
    config = subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
    for text in (layers, config):
        assert not any(s in text for s in secrets)
        assert "JWT" not in text
    assert not any(e.startswith("USERSNAP_JWT") for e in json.loads(config)[0]["Config"].get("Env", []))


def test_the_image_serves_its_definitions_to_a_dagster_elsewhere(image: str, tmp_path: Path) -> None:
    """The image's default command: a code server that a webserver and daemon outside the container load the
    code location from over gRPC (here the host's `dagster`, through a workspace naming only host and port)."""
    port = free_port()
    name = f"usersnap-channels-code-server-{os.getpid()}"
    started = subprocess.run(
        ["podman", "run", "-d", "--name", name, *FLAGS, "--network", "host",
         "-e", f"DAGSTER_CODE_SERVER_PORT={port}", "-e", "DAGSTER_CODE_SERVER_HOST=127.0.0.1", image],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        dagster = str(Path(sys.executable).with_name("dagster"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            health = subprocess.run(
                [dagster, "api", "grpc-health-check", "-p", str(port)], capture_output=True, text=True, timeout=60
            )
            if health.returncode == 0:
                break
            time.sleep(1)
        assert health.returncode == 0, subprocess.run(["podman", "logs", name], capture_output=True, text=True).stderr
        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n"
            "      location_name: usersnap_channels\n"
        )
        home = tmp_path / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        validated = subprocess.run(
            [dagster, "definitions", "validate", "-w", str(workspace)],
            env={**os.environ, "DAGSTER_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert validated.returncode == 0, validated.stdout + validated.stderr
        assert "All code locations passed validation" in validated.stdout + validated.stderr
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True, timeout=60)
