"""The import graph of our packages has no cycle.

A cycle (``a`` imports ``b`` imports ``a``), even one broken by an import inside a function,
means two modules that cannot be understood, tested or changed apart. grimp reads every import
statement, at module level and inside functions, including those under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest

PACKAGES = ("otel_setup", "services", "shopfds")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for module in sorted(graph.modules):
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return cycles


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    return grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)


def test_no_import_cycle_in_our_packages(graph: grimp.ImportGraph) -> None:
    cycles = import_cycles(graph)
    chains = [graph.find_shortest_chain(importer=cycle[0], imported=cycle[1]) for cycle in cycles]
    assert not cycles, f"import cycles: {cycles}; e.g. {chains}"


def test_the_check_finds_a_cycle_broken_by_a_function_level_import(tmp_path, monkeypatch) -> None:
    package = tmp_path / "cyclic_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def later():\n    from . import a\n    return a\n")
    (package / "c.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cyclic = grimp.build_graph("cyclic_pkg", cache_dir=None)
    assert import_cycles(cyclic) == [["cyclic_pkg.a", "cyclic_pkg.b"]]
