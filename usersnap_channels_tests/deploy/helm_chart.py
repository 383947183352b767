"""Validating Helm values as `helm install` does, against an unpacked chart, offline.

Dagster's chart schema takes its Kubernetes types (resources, probes, affinity …) by `$ref` from a remote
document; Helm downloads it at install time. `python -m usersnap_channels_tests.deploy.helm_chart CHART`
downloads every remote document the chart's schemas refer to into `CHART/.schema-refs/` (`make
test-helm-chart`, which has the network for `helm pull` anyway); validation then reads those copies only,
so a test never reaches the network and a missing copy is an error that says how to get it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
import requests
import yaml

REFS_DIR = ".schema-refs"


def merge_values(defaults: Any, ours: Any) -> Any:
    """Helm's coalescing of a values file over the chart's defaults: maps merge, anything else is replaced."""
    if isinstance(defaults, dict) and isinstance(ours, dict):
        return {**defaults, **{key: merge_values(defaults.get(key), value) for key, value in ours.items()}}
    return ours


def remote_documents(schema: Any) -> set[str]:
    """The URLs (fragment dropped) of every remote `$ref` in a schema."""
    found: set[str] = set()
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(("http://", "https://")):
            found.add(ref.split("#", 1)[0])
        for value in schema.values():
            found |= remote_documents(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= remote_documents(value)
    return found


def local_copy(chart: Path, url: str) -> Path:
    """Where the copy of a remote document lives in an unpacked chart."""
    return chart / REFS_DIR / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.json"


def schemas(chart: Path) -> Iterator[tuple[str | None, Path]]:
    """(subchart name or None for the chart itself, chart folder) of every chart with a values schema."""
    if (chart / "values.schema.json").exists():
        yield None, chart
    for sub in sorted((chart / "charts").glob("*/values.schema.json")):
        yield sub.parent.name, sub.parent


def _registry(chart: Path) -> referencing.Registry:
    """Remote `$ref`s resolved from the chart's local copies, never from the network."""

    def retrieve(uri: str) -> referencing.Resource:
        path = local_copy(chart, uri)
        if not path.exists():
            raise referencing.exceptions.NoSuchResource(ref=uri)
        return referencing.Resource.from_contents(
            json.loads(path.read_text()), default_specification=referencing.jsonschema.DRAFT4
        )

    return referencing.Registry(retrieve=retrieve)


def validate(chart: Path, values: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` unless `values`, merged over the chart's defaults, satisfy the chart's
    schema and each subchart's (whose values are the parent's under the subchart's name, plus `global`)."""
    registry = _registry(chart)
    merged = merge_values(yaml.safe_load((chart / "values.yaml").read_text()), values)
    for name, folder in schemas(chart):
        schema = _load(folder)
        if name is None:
            instance = merged
        else:
            ours = {**(merged.get(name) or {}), "global": merged.get("global") or {}}
            instance = merge_values(yaml.safe_load((folder / "values.yaml").read_text()) or {}, ours)
        validator = jsonschema.validators.validator_for(schema)(schema, registry=registry)
        try:
            validator.validate(instance)
        except referencing.exceptions.Unresolvable as exc:
            raise LookupError(
                f"{folder.name}: {exc.ref} has no copy in {chart / REFS_DIR}: `make test-helm-chart` downloads "
                "the documents the chart's schemas refer to"
            ) from exc


def download(chart: Path) -> list[str]:
    """Fetch every remote document the chart's schemas refer to into the chart's local copies."""
    urls = sorted({url for _, folder in schemas(chart) for url in remote_documents(_load(folder))})
    for url in urls:
        response = requests.get(url, timeout=60)
        response.raise_for_status()
        json.loads(response.text)  # a document, not an error page
        path = local_copy(chart, url)
        path.parent.mkdir(exist_ok=True)
        path.write_text(response.text)
    return urls


def _load(folder: Path) -> Any:
    return json.loads((folder / "values.schema.json").read_text())


if __name__ == "__main__":
    for fetched in download(Path(sys.argv[1])):
        print(f"schema document: {fetched}")
