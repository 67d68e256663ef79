"""The store package's shape: no torch, no environment variables read inside,
maintenance code on the public ``Store`` only, a docstring on every module. (Import
circles and module sizes are checked for all of sufdec in tests/misc/test_layers.py.)"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sufdec.store

PACKAGE = "sufdec.store"
ROOT = Path(sufdec.store.__file__).parent
MODULES = {(PACKAGE if p.stem == "__init__" else f"{PACKAGE}.{p.stem}"): p for p in sorted(ROOT.glob("*.py"))}


def _trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def test_no_torch_from_any_store_module() -> None:
    names = sorted(MODULES)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_no_environment_variables_read_inside() -> None:
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
                assert node.attr not in ("environ", "environb", "getenv", "getenvb"), f"{name} reads os.{node.attr}"
            if isinstance(node, ast.ImportFrom) and node.module == "os":
                bad = {a.name for a in node.names} & {"environ", "environb", "getenv", "getenvb"}
                assert not bad, f"{name} imports {bad} from os"


def test_maintenance_uses_only_public_members() -> None:
    """verify and compact reach the store through public names (no ``x._private``)."""
    trees = _trees()
    for name in (f"{PACKAGE}.verify", f"{PACKAGE}.compact"):
        private = sorted(
            {
                node.attr
                for node in ast.walk(trees[name])
                if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            }
        )
        assert private == [], f"{name} uses {private}"


def test_store_has_no_verify_shortcuts() -> None:
    """verify owns the checks and the repair; Store does not import it back."""
    assert not hasattr(sufdec.store.Store, "verify") and not hasattr(sufdec.store.Store, "repair")


def test_modules_have_docstrings() -> None:
    for name, tree in _trees().items():
        assert ast.get_docstring(tree), f"{name} has no module docstring"
