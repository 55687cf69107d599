"""The rule every package's `__all__` keeps: each listed name exists and imports, none is listed
twice, and every public name the package defines or re-exports from its own modules is listed
(so a new public function cannot slip out unlisted, nor a removed one stay listed)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path


def declared_names(module_name: str) -> set[str]:
    """Public names the module's own source defines, or imports from the package's modules."""
    module = importlib.import_module(module_name)
    path = Path(inspect.getfile(module))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.update(alias.asname or alias.name for alias in node.names)
    return {name for name in names if not name.startswith("_")}


def assert_all_is_honest(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert len(set(exported)) == len(exported), f"{module_name}: a name is listed twice"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name} is listed but does not exist"
        namespace: dict[str, object] = {}
        exec(f"from {module_name} import {name}", namespace)
        assert namespace[name] is getattr(module, name)
    missing = declared_names(module_name) - set(exported)
    assert not missing, f"{module_name} defines public names it does not list: {sorted(missing)}"
