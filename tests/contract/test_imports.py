"""The layering of the code, read from its imports: who may import whom, and no import circles."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"contracts": ROOT / "contracts", "libs": ROOT / "libs", "services": ROOT / "services"}


def module_name(path: Path) -> str:
    base = ROOT / "contracts" if path.is_relative_to(ROOT / "contracts") else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for folder in SOURCES.values():
        for path in folder.rglob("*.py"):
            found[module_name(path)] = path
    return found


MODULES = modules()


def imported(path: Path, name: str) -> Iterator[str]:
    """The project modules ``path`` imports (at any depth of its code), resolved to modules."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [  # a submodule where the name is one, else the module that defines it
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: set(imported(path, name)) for name, path in MODULES.items()}


def inside(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def offences(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in GRAPH.items()
        if inside(source, *importers)
        for target in targets
        if inside(target, *forbidden)
    )


def test_the_graph_is_read() -> None:
    """The reader finds the modules and their imports (a broken reader would pass every rule)."""
    assert "libs.runtime.service" in GRAPH["services.workflow.app"]
    assert "services.workflow.app" in GRAPH["services.registry"]


@pytest.mark.parametrize(
    ("importers", "forbidden"),
    [
        (("libs.runtime", "libs.security"), ("services", "libs.tools", "libs.devstack")),
        (("services",), ("libs.tools", "libs.devstack")),
        (("signgate_contracts", "signgate_client"), ("libs", "services")),
    ],
    ids=["runtime-and-security", "services", "contracts"],
)
def test_layers_import_only_downwards(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    """The runtime and the shared security pieces import no service, tool or dev stack; a service
    imports no tool or dev stack; the contracts import neither libs nor services."""
    found = offences(importers, forbidden)
    assert not found, "\n".join(found)


def test_only_tools_and_the_dev_stack_read_the_service_registry() -> None:
    """Only the tools and the dev stack know every service by name (``services.registry``)."""
    readers = {source for source, targets in GRAPH.items() if "services.registry" in targets}
    assert readers and all(inside(r, "libs.tools", "libs.devstack") for r in readers), sorted(readers)


def test_there_are_no_import_circles() -> None:
    """No module reaches itself through its imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert not circles, circles
