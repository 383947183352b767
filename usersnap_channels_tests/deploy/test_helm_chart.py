"""Helm-style validation of values against an unpacked chart, offline (`helm_chart.py`), on a stand-in chart
shaped like Dagster's: a parent schema whose Kubernetes types are a remote `$ref` (with a relative `$ref`
inside the remote document), and a subchart with a schema of its own. The remote document is served by a
real HTTP server on loopback, downloaded once, and read from its copy from then on."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from usersnap_channels_tests.deploy import helm_chart

K8S_DEFINITIONS = {
    "definitions": {
        "io.k8s.api.core.v1.ResourceRequirements": {
            "type": "object",
            "properties": {
                "limits": {"type": "object", "additionalProperties": {"$ref": "#/definitions/quantity"}},
                "requests": {"type": "object", "additionalProperties": {"$ref": "#/definitions/quantity"}},
            },
        },
        "quantity": {"type": "string"},
    }
}


@pytest.fixture
def k8s_server(tmp_path: Path) -> Iterator[str]:
    """The Kubernetes definitions document, served over HTTP on loopback; yields its URL."""
    root = tmp_path / "served"
    root.mkdir()
    (root / "_definitions.json").write_text(json.dumps(K8S_DEFINITIONS))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/_definitions.json"
    finally:
        server.shutdown()
        server.server_close()


def stand_in_chart(root: Path, definitions_url: str) -> Path:
    resources = {"$ref": f"{definitions_url}#/definitions/io.k8s.api.core.v1.ResourceRequirements"}
    parent = {
        "type": "object",
        "properties": {"dagsterDaemon": {"type": "object", "properties": {"resources": resources}}},
        "required": ["dagsterDaemon"],
    }
    deployment = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "resources": resources},
        "required": ["name"],
    }
    sub = {
        "type": "object",
        "properties": {
            "deployments": {"type": "array", "items": deployment},
            "global": {"type": "object", "properties": {"postgresqlSecretName": {"type": "string"}}},
        },
        "required": ["deployments", "global"],
    }
    chart = root / "dagster"
    _write_chart(chart, parent, {"dagsterDaemon": {"resources": {}}})
    _write_chart(chart / "charts" / "dagster-user-deployments", sub, {"deployments": []})
    return chart


def _write_chart(folder: Path, schema: dict[str, Any], defaults: dict[str, Any]) -> None:
    folder.mkdir(parents=True)
    (folder / "values.schema.json").write_text(json.dumps(schema))
    (folder / "values.yaml").write_text(yaml.safe_dump(defaults))


def values(memory: Any = "2Gi", deployment_memory: Any = "1Gi") -> dict[str, Any]:
    return {
        "global": {"postgresqlSecretName": "dagster-postgresql-secret"},
        "dagsterDaemon": {"resources": {"limits": {"memory": memory}}},
        "dagster-user-deployments": {
            "deployments": [{"name": "usersnap-channels", "resources": {"requests": {"memory": deployment_memory}}}]
        },
    }


def test_merging_values_follows_helm() -> None:
    defaults = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert helm_chart.merge_values(defaults, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


def test_the_remote_documents_are_downloaded_once_and_then_read_offline(tmp_path: Path, k8s_server: str) -> None:
    chart = stand_in_chart(tmp_path, k8s_server)
    assert helm_chart.download(chart) == [k8s_server]
    assert json.loads(helm_chart.local_copy(chart, k8s_server).read_text()) == K8S_DEFINITIONS

    helm_chart.validate(chart, values())


def test_a_value_the_remote_types_refuse_fails_in_chart_and_subchart(tmp_path: Path, k8s_server: str) -> None:
    chart = stand_in_chart(tmp_path, k8s_server)
    helm_chart.download(chart)
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        helm_chart.validate(chart, values(memory=2048))
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        helm_chart.validate(chart, values(deployment_memory=["1Gi"]))
    # the subchart gets `global` from the parent, as Helm passes it down
    broken = values()
    broken["global"]["postgresqlSecretName"] = 7
    with pytest.raises(jsonschema.ValidationError, match="7 is not of type 'string'"):
        helm_chart.validate(chart, broken)


def test_without_its_copy_a_remote_reference_fails_and_says_how_to_get_it(tmp_path: Path, k8s_server: str) -> None:
    chart = stand_in_chart(tmp_path, k8s_server)
    with pytest.raises(LookupError, match="make test-helm-chart"):
        helm_chart.validate(chart, values())
