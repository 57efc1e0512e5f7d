"""The engine has no import cycles (issue 17): a cycle makes a module's import order matter and hides layering bugs.

Every import counts, including the lazy ones inside functions and those under TYPE_CHECKING (grimp sees them
all): a lazy import that closes a cycle is still a cycle in the design. The Textual UI (app, tui, screens,
widgets) is left out: its flow controllers and the host protocol reference each other by design.
"""

from __future__ import annotations

import grimp

UI = ("ppdoctor.app", "ppdoctor.tui", "ppdoctor.screens", "ppdoctor.widgets")


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_engine_has_no_import_cycles() -> None:
    graph = grimp.build_graph("ppdoctor")
    engine = {m for m in graph.modules if not m.startswith(UI)}
    assert len(engine) > 100  # the whole package was read, not an empty graph
    assert _cycles(graph, engine) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for m in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(m)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.y", imported="a.z")
    assert _cycles(graph, {"a.x", "a.y", "a.z"}) == [["a.x", "a.y"]]
