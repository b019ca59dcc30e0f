"""docs/architecture.md, layers: the package is a folder per concept, stacked in one order.

Every import in kitcn_temporal goes to its own folder or to one above it in the documented
order; no import cycle joins two folders, nor two modules. Imports inside functions and under
``TYPE_CHECKING`` count: a cycle closed only by an annotation is still a cycle, and there is none.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kitcn_temporal"
#: Modules that may stand directly in kitcn_temporal/ (the public __init__ and __main__ included).
MAX_TOP_LEVEL_MODULES = 8
#: Workflow code: deterministic, replayed; it may import only the wire format and the
#: replay-safe metrics (and modules of workflow code).
WORKFLOW_CODE = {
    "jobs._workflow",
    "jobs._attempts",
    "jobs._start",
    "jobs._guard",
    "capacity._gate",
    "capacity._passage",
}
WORKFLOW_SAFE = {"_wire", "ops._metrics"}


def documented_layers() -> list[tuple[str, list[str]]]:
    """The ``layers`` block of docs/architecture.md: (layer name, its folders and modules), top first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layers block"
    layers = []
    for line in block.group(1).strip().splitlines():
        name, _, units = line.partition(":")
        layers.append((name.strip(), [u.strip().rstrip("/") for u in units.split(",")]))
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


def unit_of(module: str) -> str:
    """The folder a module lives in (``crons`` for ``crons._spec``), or the top-level module itself."""
    return module.split(".")[0]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(path)
                elif nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return cycles


LAYERS = documented_layers()
LAYER_OF = {unit: index for index, (_, units) in enumerate(LAYERS) for unit in units}
MODULES = package_modules()
GRAPH = {name: imports_of(name, path, set(MODULES)) for name, path in MODULES.items()}
FOLDERS = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
UNIT_GRAPH: dict[str, set[str]] = {}
for _module, _targets in GRAPH.items():
    UNIT_GRAPH.setdefault(unit_of(_module), set()).update(
        unit_of(t) for t in _targets if unit_of(t) != unit_of(_module)
    )


def test_at_most_eight_modules_stand_at_the_top() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_folder_and_top_level_module_is_in_the_documented_layer_list() -> None:
    units = {unit_of(m) for m in MODULES}
    assert sorted(units - set(LAYER_OF)) == []
    assert sorted(set(LAYER_OF) - units) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_folder_or_those_above(module: str) -> None:
    mine = LAYER_OF[unit_of(module)]
    upward = sorted(t for t in GRAPH[module] if LAYER_OF[unit_of(t)] > mine)
    assert upward == [], f"{module} ({LAYERS[mine][0]}) imports from lower layers: {upward}"


def test_no_import_cycle_between_folders() -> None:
    assert find_cycles(UNIT_GRAPH) == []


def test_no_import_cycle_between_modules() -> None:
    assert find_cycles(GRAPH) == []


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_says_what_it_holds_and_its_layer(folder: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
    assert f"Layer: {LAYERS[LAYER_OF[folder]][0]}" in doc
    assert len(doc.splitlines()) >= 3, f"{folder}/__init__.py's docstring should say what the folder holds"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if "." not in m and m not in FOLDERS))
def test_a_top_level_module_docstring_names_its_layer(module: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text())) or ""
    assert f"Layer: {LAYERS[LAYER_OF[module]][0]}" in doc


@pytest.mark.parametrize("module", sorted(WORKFLOW_CODE))
def test_workflow_code_imports_only_the_wire_format_and_replay_safe_metrics(module: str) -> None:
    assert sorted(GRAPH[module] - WORKFLOW_SAFE - WORKFLOW_CODE) == []
