"""deploy/helm/values.yaml, checked as far as a machine without a Kubernetes cluster allows.

No cluster and no network here, so: the values' own promises are checked (the code location serves the
workspace's module, credentials come from a Secret by name, one volume on one node for the DuckDB file), and
the `dagster.yaml` the chart renders from them (run launcher, run coordinator, concurrency) is loaded by a
real `DagsterInstance`, which builds a real `K8sRunLauncher`. The values against the chart's own
`values.schema.json` only where the chart is (`make test-helm-chart`: it is on no package registry this
machine reaches, and a copy may not be committed; `test_helm_chart.py` checks that validation offline on a
stand-in chart). Not checked: what only a cluster shows (pods scheduled, the volume attached, a run launched).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_k8s import K8sRunLauncher

from usersnap_channels.defs.instance_env import RUN_ENV
from usersnap_channels_tests.deploy import helm_chart

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "deploy" / "helm"
RELEASE, NAMESPACE = "usersnap", "usersnap"
#: The chart release the values are written for: the dagster release the image pins.
CHART_VERSION = "1.13.27"
#: The environment the chart gives the daemon, webserver and run pods (what the instance config refers to).
CHART_ENV = {
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": f"{RELEASE}-dagster-instance",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": f"{RELEASE}-dagster-pipeline-env",
}


def load_values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def code_location(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment["env"]}


def test_the_code_location_serves_the_workspace_module() -> None:
    (entry,) = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    deployment = code_location(load_values())
    assert deployment["dagsterApiGrpcArgs"] == ["-m", entry["python_module"]["module_name"]]
    assert deployment["image"] == {"repository": "usersnap-channels", "tag": "latest", "pullPolicy": "IfNotPresent"}


def test_credentials_come_from_a_secret_named_only() -> None:
    values = load_values()
    deployment = code_location(values)
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert deployment["envSecrets"] == launcher["envSecrets"] == [{"name": "usersnap-credentials"}]
    assert not {"USERSNAP_JWT_ID", "USERSNAP_JWT_SECRET"} & set(env_of(deployment))
    assert "postgresqlPassword" not in values["postgresql"] and values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == "dagster-postgresql-secret"


def test_every_pod_that_opens_the_duckdb_file_mounts_the_one_volume_on_one_node() -> None:
    values = load_values()
    deployment = code_location(values)
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    claim = yaml.safe_load((HELM / "duckdb-pvc.yaml").read_text())
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volume = {"name": "duckdb", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    assert deployment["volumes"] == launcher["volumes"] == [volume]
    assert deployment["volumeMounts"] == launcher["volumeMounts"]
    (mount,) = deployment["volumeMounts"]
    assert Path(env_of(deployment)["USERSNAP_CHANNELS_DB"]).parent == Path(mount["mountPath"])
    assert deployment["nodeSelector"] == launcher["runK8sConfig"]["podSpecConfig"]["nodeSelector"]


def test_the_pods_can_write_the_volume_as_the_images_user() -> None:
    """The image runs as uid 10001 (Containerfile): a fresh volume owned by root is writable only through
    the pods' fsGroup, on the code server and on every run pod alike."""
    uid = re.search(r"^USER\s+(\d+)", (REPO / "Containerfile").read_text(), re.M)
    assert uid is not None
    values = load_values()
    run_pod = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    assert code_location(values)["podSecurityContext"]["fsGroup"] == int(uid.group(1))
    assert run_pod["securityContext"]["fsGroup"] == int(uid.group(1))


def test_the_processes_that_create_runs_get_the_run_environment() -> None:
    """The daemon and the webserver run Dagster's image and create runs (sensor and backfill runs, UI launches),
    so the run environment is theirs by the chart's `env`; the code server and run pods apply it themselves."""
    values = load_values()
    for process in ("dagsterDaemon", "dagsterWebserver"):
        assert env_of(values[process]) == RUN_ENV, process


def rendered_instance(values: dict[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """What the chart's configmap-instance.yaml renders for these values, storage aside.

    Run launcher as `dagsterYaml.runLauncher.k8s`, run coordinator as `dagsterYaml.runCoordinator.queued`,
    concurrency as `dagsterYaml.concurrency` (helm/dagster/templates/helpers/instance/ in dagster's
    repository). Two departures, for a machine without a cluster: the in-cluster config is replaced by a
    kubeconfig file, and storage stays the test instance's SQLite (Postgres storage is the Postgres
    profile's, tested there).
    """
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher" and launcher["loadInclusterConfig"] is True
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    queued = coordinator["config"]["queuedRunCoordinator"]
    concurrency = values["concurrency"]
    assert concurrency["enabled"] and coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    assert "maxConcurrentRuns" not in queued, "the chart refuses run limits in both places"
    return {
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "load_incluster_config": False,
                "kubeconfig_file": str(kubeconfig),
                "job_namespace": launcher.get("jobNamespace") or NAMESPACE,
                "image_pull_policy": launcher["imagePullPolicy"],
                "service_account_name": f"{RELEASE}-dagster",
                "dagster_home": {"env": "DAGSTER_HOME"},
                "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
                "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
                "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
                + [m["name"] for m in launcher["envConfigMaps"]],
                "env_secrets": [s["name"] for s in launcher["envSecrets"]],
                "volume_mounts": launcher["volumeMounts"],
                "volumes": launcher["volumes"],
                "run_k8s_config": {"pod_spec_config": launcher["runK8sConfig"]["podSpecConfig"]},
            },
        },
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": queued["dequeueIntervalSeconds"]},
        },
        "concurrency": {
            "pools": {
                "default_limit": concurrency["pools"]["defaultLimit"],
                "granularity": concurrency["pools"]["granularity"],
            },
            "runs": {"max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"]},
        },
    }


def dummy_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig naming a cluster that is never contacted (the launcher only reads it at start)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
                "users": [{"name": "none", "user": {}}],
            }
        )
    )
    return path


def test_dagster_instance_loads_the_rendered_k8s_run_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = load_values()
    secret = values["global"]["postgresqlSecretName"]
    for name, value in {**CHART_ENV, "DAGSTER_K8S_PG_PASSWORD_SECRET": secret}.items():
        monkeypatch.setenv(name, value)
    with dg.instance_for_test(overrides=rendered_instance(values, dummy_kubeconfig(tmp_path))) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == NAMESPACE
        assert launcher.image_pull_policy == "IfNotPresent"
        assert launcher.env_secrets == ["usersnap-credentials"]
        assert launcher.instance_config_map == CHART_ENV["DAGSTER_K8S_INSTANCE_CONFIG_MAP"]
        assert launcher.postgres_password_secret == "dagster-postgresql-secret"
        assert [v["persistentVolumeClaim"]["claimName"] for v in launcher.volumes] == ["usersnap-channels-duckdb"]
        assert launcher.job_image is None  # the code location's image runs its runs

        # The single-writer rule of dagster.yaml, the same on Kubernetes.
        local = yaml.safe_load((REPO / "dagster.yaml").read_text())["concurrency"]
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == local["pools"]["default_limit"] == 1
        assert config.pool_config.pool_granularity.value == local["pools"]["granularity"] == "op"
        assert config.run_queue_config.max_concurrent_runs == local["runs"]["max_concurrent_runs"]


@pytest.mark.helm_chart
def test_the_values_validate_against_the_charts_own_schema() -> None:
    """Where the chart is (`make test-helm-chart` unpacks it and copies the documents its schema refers to,
    or DAGSTER_HELM_CHART names such a folder): the values against the chart's and its subchart's
    `values.schema.json`, as `helm install` validates them. Not in `make test`: the chart is on no registry
    this project's CI reaches, and a copy may not be committed."""
    chart = os.environ.get("DAGSTER_HELM_CHART")
    if not chart:
        pytest.skip("no chart: DAGSTER_HELM_CHART names an unpacked dagster/dagster chart (make test-helm-chart)")
    chart_yaml = yaml.safe_load((Path(chart) / "Chart.yaml").read_text())
    assert (chart_yaml["name"], chart_yaml["version"]) == ("dagster", CHART_VERSION)
    # the code location's values are the subchart's: its schema must be there to be checked, not skipped
    subcharts = [name for name, _ in helm_chart.schemas(Path(chart)) if name is not None]
    assert "dagster-user-deployments" in subcharts, f"no unpacked subchart schema under {chart}/charts"
    helm_chart.validate(Path(chart), load_values())
