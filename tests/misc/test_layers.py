"""The import graph of sufdec: no circles, arrows only down the layers.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import
that runs up the layers is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "sufdec"

# lower rank = lower layer; a module may import only modules of its own or a lower rank
from sufdec import LAYERS  # noqa: E402

RANKS = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _from_module(package: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` reads, relative imports resolved against ``package``."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The sufdec modules ``name`` imports (the deepest known module of each import)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _from_module(package, node)
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "sufdec":
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_every_module_has_a_layer():
    missing = sorted({_layer(m) for m in _graph() if m != "sufdec"} - set(RANKS))
    assert not missing, f"modules outside the known layers: {missing}"


def test_imports_point_down_the_layers():
    graph = _graph()
    bad = []
    for mod, deps in graph.items():
        if mod == "sufdec":
            continue
        for dep in deps:
            if RANKS[_layer(dep)] > RANKS[_layer(mod)]:
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports that run up the layers: " + ", ".join(sorted(bad))


def test_engine_never_imports_the_store():
    graph = _graph()
    bad = [f"{m} -> {d}" for m, deps in graph.items() if _layer(m) == "engine" for d in deps if _layer(d) == "store"]
    assert not bad, bad


def test_no_import_circles():
    """No two modules reach each other (package __init__ re-exports aside)."""
    graph = _graph()
    # a package's __init__ importing its own submodules is how it re-exports them: not a circle
    edges = {m: {d for d in deps if not (d.startswith(m + "."))} for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_readme_lists_the_layers_in_their_order():
    """README's Architecture list quotes ``sufdec.LAYERS``: every layer, in the same order."""
    readme = (ROOT.parent / "README.md").read_text()
    block = readme[readme.index("## Architecture") :]
    block = block[: block.index("Imports point down")]
    listed = [
        line.split()[0].rstrip("/").removesuffix(".py")
        for line in block.splitlines()
        if line.startswith("      ") and not line.startswith("       ")
    ]
    expected = [name for names in LAYERS for name in names if name != "__main__"]
    assert listed == expected, listed


def _defined(path: Path) -> set[str]:
    """Names a module defines or imports at its top level (what ``from it import name`` finds)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):  # names defined in either branch
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                    names.add(sub.name)
                elif isinstance(sub, ast.Assign):
                    names.update(n.id for t in sub.targets for n in ast.walk(t) if isinstance(n, ast.Name))
                elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                    names.update((a.asname or a.name).split(".")[0] for a in sub.names)
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in [node]):
            names.add("*")  # a module __getattr__ makes names on demand
    return names


def test_every_name_imported_from_sufdec_exists():
    """``from sufdec.x import name`` anywhere (lazy imports in functions included) names
    something ``sufdec.x`` defines, imports or has as a submodule: a moved function is
    caught here, not when a rarely used command first runs."""
    mods = _modules()
    bad = []
    for name, path in sorted(mods.items()):
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _from_module(package, node)
            if target not in mods:
                continue
            defined = _defined(mods[target])
            for alias in node.names:
                if alias.name == "*" or "*" in defined:
                    continue
                if alias.name not in defined and f"{target}.{alias.name}" not in mods:
                    bad.append(f"{name}: from {target} import {alias.name}")
    assert not bad, "names imported that do not exist: " + "; ".join(bad)
