"""The package's import structure: no cycles between its parts, no upward imports, no op module
reading another op module's private names.

The graph is read from the source with :mod:`ast` (nothing is imported), so a lazy import inside a
function counts as much as one at the top: a cycle hidden in a function body is still a cycle for a
reader following the code.
"""

from __future__ import annotations

import ast
import collections
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "poolref"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import of poolref inside ``module``.

    ``from .x import y`` where ``x.y`` is itself a module is an import of that module.
    """
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "poolref"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "poolref":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.append((submodule, None) if submodule in MODULES else (target, alias.name))
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def part(module: str) -> str:
    """The top-level part of the package a module belongs to: poolref.oracle.engine -> oracle."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "poolref"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph as a list of nodes (first repeated at the end), or None."""
    state = {}  # node -> "open" while on the current path, "done" after

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def part_graph() -> dict[str, set[str]]:
    edges = collections.defaultdict(set)
    for module, imports in GRAPH.items():
        for target, _ in imports:
            if part(module) != part(target) and part(module) != "poolref" and part(target) != "poolref":
                edges[part(module)].add(part(target))
    return edges


def test_the_graph_was_read():
    # guards the tests below against passing on an empty graph
    edges = part_graph()
    assert {"ops", "oracle", "testing", "cases", "autograd"} <= {part(module) for module in MODULES}
    assert "autograd" in edges["ops"] and "ops" in edges["oracle"]


def test_the_parts_of_the_package_import_each_other_without_a_cycle():
    cycle = find_cycle(part_graph())
    assert cycle is None, "import cycle between parts of poolref: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"testing": {"oracle"}, "oracle": {"cases", "testing"}}) == ["oracle", "testing", "oracle"]
    assert find_cycle({"oracle": {"cases"}, "testing": {"cases"}}) is None


def test_no_module_imports_the_package_root():
    # internals import what they use from where it lives; the root only gathers the public names
    upward = sorted(f"{module} imports {name!r} from the root" for module, imports in GRAPH.items()
                    for target, name in imports if target == "poolref" and module != "poolref")
    assert upward == []


def op_family(module: str) -> str | None:
    """poolref.ops.region.align -> 'region'; poolref.ops.window -> 'window'; None outside ops."""
    pieces = module.split(".")
    return pieces[2] if len(pieces) > 2 and pieces[1] == "ops" else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if op_family(m)))
def test_no_op_module_imports_another_op_modules_private_names(module):
    borrowed = [f"{name} from {target}" for target, name in GRAPH[module]
                if name and name.startswith("_") and op_family(target) and op_family(target) != op_family(module)]
    assert borrowed == [], f"{module} borrows private names; move them to a shared module: {borrowed}"


def test_the_private_name_rule_sees_a_borrowed_name(monkeypatch):
    # the rule above, run on a planted module, fails
    fake = {"poolref.ops.window": [], "poolref.ops.convolution": [("poolref.ops.window", "_pad")]}
    monkeypatch.setitem(globals(), "GRAPH", fake)
    with pytest.raises(AssertionError, match="_pad from poolref.ops.window"):
        test_no_op_module_imports_another_op_modules_private_names("poolref.ops.convolution")
