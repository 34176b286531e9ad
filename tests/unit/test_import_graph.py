"""No import cycle among first-party modules, lazy (function-level) imports included: a cycle means
two modules that cannot be understood, tested or moved apart (grimp reads the imports, no code runs)."""

from __future__ import annotations

import grimp

PACKAGES = ("shared", "node_bootstrap", "functions")


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One cycle through each module that is on one: the module, then the imports back to it."""
    found = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                found.append([module, *chain])
                break
    return found


def test_the_detector_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in (("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")):
        graph.add_import(importer=importer, imported=imported)
    assert cycles(graph) == [["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"]]


def test_first_party_modules_import_no_cycle() -> None:
    assert cycles(grimp.build_graph(*PACKAGES, cache_dir=None)) == []
