"""docs/architecture.md, layers: every import in kitcn_temporal goes down the layer list.

Imports inside functions and under ``TYPE_CHECKING`` count: a cycle closed only by an
annotation is still a cycle, and there is none.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kitcn_temporal"


def documented_layers() -> list[tuple[str, list[str]]]:
    """The ``layers`` block of docs/architecture.md: (layer name, modules), top first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layers block"
    layers = []
    for line in block.group(1).strip().splitlines():
        name, _, modules = line.partition(":")
        layers.append((name.strip(), [m.strip() for m in modules.split(",")]))
    return layers


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name relative to it (``sql._store``, ``cli``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts in ([], ["__main__"]):  # the package root re-exports the public surface
            continue
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, wherever the import statement is."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("kitcn_temporal"):
                stem = node.module.removeprefix("kitcn_temporal").lstrip(".")
            else:
                continue
            # ``from . import _schema`` imports the submodule; ``from ._x import y`` the module _x.
            targets = [sub if (sub := f"{stem}.{alias.name}".lstrip(".")) in known else stem for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [
                a.name.removeprefix("kitcn_temporal").lstrip(".")
                for a in node.names
                if a.name.startswith("kitcn_temporal")
            ]
        for target in targets:
            if target in known and target != name:
                found.add(target)
    return found


LAYERS = documented_layers()
LAYER_OF = {module: index for index, (_, modules) in enumerate(LAYERS) for module in modules}
MODULES = package_modules()
GRAPH = {name: imports_of(name, path, set(MODULES)) for name, path in MODULES.items()}


def test_every_module_is_in_the_documented_layer_list() -> None:
    assert sorted(set(MODULES) - set(LAYER_OF)) == []
    assert sorted(set(LAYER_OF) - set(MODULES)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_layer_or_above(module: str) -> None:
    upward = sorted(t for t in GRAPH[module] if LAYER_OF[t] > LAYER_OF[module])
    assert upward == [], f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports from lower layers: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_docstring_names_its_layer(module: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text())) or ""
    assert f"Layer: {LAYERS[LAYER_OF[module]][0]}" in doc


def test_no_import_cycle() -> None:
    cycles = []
    for start in GRAPH:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in GRAPH[node]:
                if nxt == start:
                    cycles.append(path)
                elif nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    assert cycles == []
