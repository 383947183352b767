"""The package's layers, checked from the source: lower layers never import higher ones, and functions
stay small enough to read at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "usersnap_channels"
#: Lowest first. A module may import from its own layer or lower ones (data flow is not import direction).
LAYERS: list[tuple[str, ...]] = [
    ("settings", "jsonio", "partitions", "processes"),
    ("usersnap",),
    ("warehouse",),
    ("ingest",),
    ("themes",),
    ("report",),
    ("defs", "definitions"),
    ("cli", "demo", "devserver"),
]
MAX_FUNCTION_LINES = 80


def layer_of(module: str) -> int:
    """Layer index of a dotted module name inside the package (`usersnap_channels.x.y` → layer of x)."""
    head = module.split(".")[1] if module.count(".") else ""
    for index, names in enumerate(LAYERS):
        if head in names:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            found.append((".".join(parts), path))
    return found


def imported(path: Path) -> set[str]:
    """Every `usersnap_channels...` module a file imports, at any depth (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("usersnap_channels"):
            names.add(node.module if node.module != "usersnap_channels" else f"usersnap_channels.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("usersnap_channels.")}
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_a_module_imports_only_its_own_layer_or_lower_ones(module: str, path: Path) -> None:
    own = layer_of(module)
    higher = sorted(name for name in imported(path) if layer_of(name) > own)
    assert higher == [], f"{module} (layer {LAYERS[own]}) imports higher layers: {higher}"


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for module, path in modules():
        if ".devserver" in module:
            continue  # the fake Usersnap server's data tables and handlers are not product code
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []
