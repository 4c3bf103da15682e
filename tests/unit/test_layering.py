"""The house rule of ../shared/DESIGN.md, checked on the source: arrows point down
(``server``/``cli`` → ``tools`` → ``indexer``/``store``/``embeddings``/``generator`` →
``models`` → ``config``/``schemas``/``errors``), no import circle between modules (lazy
imports inside functions count), and ``tools``, ``indexer``, ``store`` never import
``mcp``. Pure ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "dirac_docs_mcp"
SRC = Path(__file__).resolve().parents[2] / "src" / PACKAGE

#: a module may import modules of its own layer or of a lower one (first match wins)
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("errors", "config", "schemas", "stopwords", "hardware", "")),  # "" = package __init__
    (1, ("models",)),
    (2, ("embeddings", "generator", "store", "indexer", "sources", "query_log")),
    (3, ("runtime",)),
    (4, ("tools", "evaluation", "tuning")),
    (5, ("server", "http_app", "cli", "__main__")),
]
#: top-level packages that must stay transport-free
NO_MCP = ("tools", "indexer", "store", "sources", "tuning", "query_log")


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for level, names in LAYERS:
        if top in names:
            return level
    raise AssertionError(f"{module!r} is in no layer of {__file__}; add it to LAYERS")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def parse_tree(root: Path) -> dict[str, tuple[ast.Module, bool]]:
    """module name (relative to the package, "" for its __init__) → (ast, is a package)."""
    return {
        module_name(p, root): (ast.parse(p.read_text(), str(p)), p.name == "__init__.py")
        for p in sorted(root.rglob("*.py"))
    }


def imports(
    modules: dict[str, tuple[ast.Module, bool]],
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(intra-package import graph, external top-level names imported), per module; every
    import statement counts, at module level or inside a function."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    external: dict[str, set[str]] = {name: set() for name in modules}

    def known(dotted: str) -> str | None:
        while dotted not in modules:
            if "." not in dotted:
                return "" if dotted == "" else None
            dotted = dotted.rsplit(".", 1)[0]
        return dotted

    def inside(absolute: str) -> str | None:
        if absolute == PACKAGE:
            return ""
        if absolute.startswith(PACKAGE + "."):
            return absolute[len(PACKAGE) + 1 :]
        return None

    for name, (tree, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    rel = inside(alias.name)
                    if rel is None:
                        external[name].add(alias.name.split(".")[0])
                    else:
                        targets.append(rel)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (node.level - 1)]
                    if node.module:
                        base += node.module.split(".")
                    rel = ".".join(base)
                else:
                    rel = inside(node.module or "")
                    if rel is None:
                        external[name].add((node.module or "").split(".")[0])
                        continue
                for alias in node.names:  # "from . import x" may name a submodule
                    sub = f"{rel}.{alias.name}" if rel else alias.name
                    targets.append(sub if sub in modules else rel)
            for target in targets:
                resolved = known(target)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph, external


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a or PACKAGE} (layer {layer_of(a)}) imports {b or PACKAGE} (layer {layer_of(b)})"
        for a, targets in graph.items()
        for b in targets
        if layer_of(b) > layer_of(a)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph_and_external():
    return imports(parse_tree(SRC))


def test_every_module_has_a_layer(graph_and_external) -> None:
    graph, _ = graph_and_external
    for module in graph:
        layer_of(module)
    assert {"store", "models.embedding", "generator.transformers_backend"} <= graph["runtime"]


def test_no_import_runs_upward(graph_and_external) -> None:
    assert upward_imports(graph_and_external[0]) == []


def test_no_import_circle(graph_and_external) -> None:
    assert cycles(graph_and_external[0]) == []


def test_tools_indexer_store_never_import_mcp(graph_and_external) -> None:
    _, external = graph_and_external
    offenders = [m for m, names in external.items() if m.split(".")[0] in NO_MCP and "mcp" in names]
    assert offenders == []


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    """A synthetic package with an upward lazy import and a circle."""
    root = tmp_path / PACKAGE
    (root / "store").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "config.py").write_text("")
    (root / "store" / "__init__.py").write_text("from .base import Store\n")
    (root / "store" / "base.py").write_text(
        "from ..config import X\n\ndef f():\n    from ..tools.search import g\n"
    )
    (root / "tools").mkdir()
    (root / "tools" / "__init__.py").write_text("")
    (root / "tools" / "search.py").write_text("from ..store import Store\nimport mcp\n")
    (root / "models.py").write_text("from . import embeddings\n")
    (root / "embeddings.py").write_text("from dirac_docs_mcp.models import Spec\n")
    graph, external = imports(parse_tree(root))
    assert graph["store.base"] == {"config", "tools.search"}
    assert upward_imports(graph) == [
        "models (layer 1) imports embeddings (layer 2)",
        "store.base (layer 2) imports tools.search (layer 4)",
    ]
    assert sorted(cycles(graph)) == [
        ["embeddings", "models"],
        ["store", "store.base", "tools.search"],
    ]
    assert "mcp" in external["tools.search"]
