"""The house's rooms and the one way its imports run (`ingestor/__init__.py`): every `ingestor` module, read with
`ast`, imports only rooms below its own (function-level imports included), no module imports itself round a cycle,
and each package's `__init__` says what the room is for and what it may import.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ingestor"

# Rooms from the top down; a room may import the rooms listed for it and itself.
LEAVES = {"errors", "bounds", "logs", "metrics", "commit", "models", "tables", "retention", "config", "version"}
ALLOWED: dict[str, set[str]] = {
    "__main__": {"cli"},
    "cli": {"config_check", "run", "provision", "sources", "pipeline", "sinks", "connect"} | LEAVES,
    "config_check": {"provision"} | LEAVES,
    "run": {"sources", "pipeline", "sinks", "connect"} | LEAVES,
    "provision": LEAVES,
    "sources": {"connect"} | LEAVES,
    "sinks": {"connect"} | LEAVES,
    "pipeline": LEAVES,
    "connect": LEAVES,
    **{leaf: LEAVES for leaf in LEAVES},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    """`ingestor.run.flow` -> `run`; `ingestor` itself (its `__version__`) -> `version`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "version"


def imports(path: Path) -> set[str]:
    """The `ingestor` modules that `path` imports anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "ingestor")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ingestor":
            found.add(node.module)
    return found


MODULES = {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_room_is_known() -> None:
    assert {room(module) for module in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_rooms_below_its_own(module: str) -> None:
    mine = room(module)
    upward = sorted(target for target in MODULES[module] if room(target) not in ALLOWED[mine] | {mine})
    assert upward == [], f"{module} ({mine}) may import only {sorted(ALLOWED[mine])}"


def test_no_module_imports_itself_round_a_cycle() -> None:
    graph = {module: {t for t in targets if t in MODULES and t != module} for module, targets in MODULES.items()}
    for module, targets in graph.items():  # `from ingestor.x import y` of a package is an import of its __init__
        graph[module] = {t for t in targets if not module.startswith(f"{t}.")}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_the_layers_catch_an_upward_import(tmp_path: Path) -> None:
    leaf = tmp_path / "models.py"
    leaf.write_text("from ingestor.run.flow import Flow\n\n\ndef f() -> None:\n    import ingestor.sinks.delivery\n")
    found = imports(leaf)
    assert found == {"ingestor.run.flow", "ingestor.sinks.delivery"}
    assert {room(t) for t in found} - ALLOWED["models"] == {"run", "sinks"}


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_each_room_says_what_it_is_for_and_what_it_may_import(package: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
    assert docstring and "May import" in docstring, f"ingestor/{package}/__init__.py"
