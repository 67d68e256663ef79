"""The CLI and the benchmarks use the store through its package face, ``sufdec.store``
(what its ``__init__`` exports), and the C++ core through ``sufdec.suffix``: never a
module inside ``sufdec.store`` nor ``sufdec._core`` itself.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import
of ``sufdec.store.meta`` in a rarely run command is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "sufdec"
CHECKED = ("cli", "bench")
STORE = "sufdec.store"
CORE = "sufdec._core"
STORE_MODULES = {p.stem for p in (ROOT / "store").glob("*.py") if p.stem != "__init__"} | {
    p.name for p in (ROOT / "store").iterdir() if (p / "__init__.py").is_file()
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` reads, a relative one resolved against the file's package."""
    if not node.level:
        return node.module or ""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _bad_imports(path: Path, source: str) -> list[str]:
    """Each import in ``source`` that reaches past the store's face or into the core."""
    bad = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(path, node)
            modules = [target]
            if target == STORE:  # ``from sufdec.store import verify`` reads a submodule too
                modules += [f"{STORE}.{a.name}" for a in node.names if a.name in STORE_MODULES]
            elif target == "sufdec":
                modules += [f"sufdec.{a.name}" for a in node.names]
        else:
            continue
        for module in modules:
            if module.startswith(STORE + ".") or module == CORE or module.startswith(CORE + "."):
                bad.append(f"{_module_name(path)}:{node.lineno} imports {module}")
    return bad


def _checked_files() -> list[Path]:
    files = sorted(p for layer in CHECKED for p in (ROOT / layer).rglob("*.py"))
    assert len(files) > 10, files  # the walk found the packages
    return files


def test_cli_and_bench_use_the_store_face_only():
    bad = [b for path in _checked_files() for b in _bad_imports(path, path.read_text())]
    assert not bad, "imports past sufdec.store's face or into sufdec._core: " + "; ".join(bad)


def test_the_check_sees_every_kind_of_import_past_the_face():
    """The check itself: each spelling of a submodule import is caught, the face is not."""
    where = ROOT / "cli" / "x.py"
    caught = [
        "from sufdec.store.meta import MAX_BUDGET",
        "import sufdec.store.compact",
        "from sufdec.store import verify as checks",
        "def f():\n    from sufdec.store.envfiles import check_store_reachable",
        "from ..store.reads import count_sources",
        "from ..store import ingest",
        "from sufdec._core import SuffixTree",
        "import sufdec._core",
        "from sufdec import _core",
    ]
    for source in caught:
        assert _bad_imports(where, source), source
    for source in (
        "from sufdec.store import MAX_BUDGET, Store",
        "import sufdec.store",
        "from sufdec.suffix import SuffixTree",
    ):
        assert not _bad_imports(where, source), source


def test_what_the_cli_and_bench_import_from_the_face_is_exported():
    """Every name they take from ``sufdec.store`` is in its ``__all__``."""
    import sufdec.store

    missing = []
    for path in _checked_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and _absolute(path, node) == STORE:
                missing += [f"{_module_name(path)}: {a.name}" for a in node.names if a.name not in sufdec.store.__all__]
    assert not missing, missing
