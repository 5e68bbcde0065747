"""The package graph goes one way: flows -> storage -> stad_core.

Checked two ways: statically (no forbidden import statement anywhere in a layer) and dynamically
(``stad_core`` imports in a fresh interpreter where prefect and zarr cannot be imported).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "stad_core": {"prefect", "prefect_dask", "zarr", "numcodecs", "storage", "flows", "dask", "distributed"},
    "storage": {"prefect", "prefect_dask", "flows", "dask", "distributed"},
}


def _imported_top_level(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_forbidden_imports(layer: str) -> None:
    offenders = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        bad = _imported_top_level(path) & FORBIDDEN[layer]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "layering violated:\n" + "\n".join(offenders)


def test_stad_core_imports_without_prefect_and_zarr() -> None:
    # A meta-path finder that refuses prefect/zarr proves no stad_core module needs them.
    code = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'prefect', 'zarr', 'numcodecs', 'dask', 'distributed'}:
            raise ImportError('blocked for the layering test: ' + name)
sys.meta_path.insert(0, Block())
import stad_core
for mod in pkgutil.walk_packages(stad_core.__path__, 'stad_core.'):
    importlib.import_module(mod.name)
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
