"""The layering of the package (docs/architecture.md), read off the imports.

* ``skmoe/_torch/`` is the engine: it imports nothing from outside itself.
* Everything else reaches the engine through one module, ``skmoe._torch.api``.
* No module of ``skmoe`` imports, directly or through others, itself.
* docs/architecture.md names every module.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "skmoe"
ENGINE = "skmoe._torch"
DOOR = "skmoe._torch.api"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The skmoe modules that module ``name`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            for alias in node.names:
                # ``from pkg import sub`` imports the submodule ``pkg.sub``.
                sub = f"{origin}.{alias.name}"
                found.add(sub if sub in MODULES else origin)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_engine_imports_nothing_outside_itself():
    outside = {
        name: sorted(m for m in deps if not m.startswith(ENGINE))
        for name, deps in GRAPH.items()
        if name.startswith(ENGINE)
    }
    assert {k: v for k, v in outside.items() if v} == {}


def test_the_front_reaches_the_engine_only_through_its_door():
    through_other_doors = {
        name: sorted(m for m in deps if m.startswith(ENGINE + ".") and m != DOOR)
        for name, deps in GRAPH.items()
        if not name.startswith(ENGINE)
    }
    assert {k: v for k, v in through_other_doors.items() if v} == {}


def test_no_import_cycles():
    cycles = []

    def visit(name, path):
        for dep in sorted(GRAPH[name]):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(name)

    done: set[str] = set()
    for name in sorted(GRAPH):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_the_checks_see_real_imports():
    """The graph is not vacuous: known edges are found."""
    assert DOOR in GRAPH["skmoe._estimators"]
    assert "skmoe._torch.training" in GRAPH[DOOR]
    assert "skmoe._version" in GRAPH["skmoe._persistence"]


def test_the_architecture_page_names_every_module():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = [
        name for name in MODULES
        if name not in ("skmoe", "skmoe._torch", "skmoe.datasets", "skmoe.__main__")
        and f"`{name.removeprefix('skmoe.').replace('.', '/')}.py`" not in page
    ]
    assert missing == []
