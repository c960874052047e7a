"""No module of the package imports itself back, type-only imports included.

The graph is built from the source with `ast`: every `import` / `from ... import` anywhere in a module
(top level, inside functions, under TYPE_CHECKING) is an edge to the package module it names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ml_connector_pipelines

PACKAGE_DIR = Path(ml_connector_pipelines.__file__).parent
PACKAGE = PACKAGE_DIR.name


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """The package modules an import statement names (a `from x import y` names x.y when it exists)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    found = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
    return found or ([target] if target in modules else [])


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    paths = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {module: set() for module in paths}
    for module, path in paths.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _imported(node, module, is_package, set(paths)):
                # A module importing its own parent package is not a cycle worth breaking.
                if target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def path_between(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """One import chain from start to goal, or None (depth-first)."""
    stack, seen = [[start]], {start}
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        for following in sorted(graph[path[-1]] - seen):
            seen.add(following)
            stack.append([*path, following])
    return None


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    cycles = {
        " -> ".join([module, *back])
        for module, targets in graph.items()
        for target in targets
        if (back := path_between(graph, target, module))
    }
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles)[:10])


def test_the_graph_sees_type_only_and_function_level_imports() -> None:
    graph = import_graph()
    # TYPE_CHECKING import in the ledger, and default_simulators' imports inside a function.
    assert f"{PACKAGE}.core.store" in graph[f"{PACKAGE}.core.ledger"]
    assert f"{PACKAGE}.sandbox.wise.simulator" in graph[f"{PACKAGE}.sandbox.host"]
