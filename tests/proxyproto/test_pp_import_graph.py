"""The codec's modules import each other without a cycle (also imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import ppdoctor.proxyproto as pkg


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in Path(pkg.__file__).parent.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update([node.module] if node.module else [a.name for a in node.names])
        graph[path.stem] = deps - {"__init__"}
    return graph


def test_no_import_cycle_inside_the_codec():
    graph = _graph()
    assert graph["_types"] >= {"_tlv"}  # the check reads real imports

    def visit(mod: str, path: tuple[str, ...]) -> None:
        for dep in graph.get(mod, ()):
            assert dep not in path, "import cycle: " + " → ".join((*path[path.index(dep):], dep))
            visit(dep, (*path, dep))

    for mod in graph:
        if mod != "__init__":
            visit(mod, (mod,))


def test_registered_encoders_and_describer_work():
    from ppdoctor.proxyproto import parse, proxy_v1, proxy_v2

    for raw in (proxy_v1(("1.2.3.4", 5), ("5.6.7.8", 80)), proxy_v2(("1.2.3.4", 5), ("5.6.7.8", 80), crc32c=True)):
        parsed = parse(raw)
        assert parsed.header.encode(crc32c=parsed.header.version == 2) == raw
        assert parsed.as_dict()["version"] == parsed.header.version
