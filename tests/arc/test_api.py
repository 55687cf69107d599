"""The package's public surface, and the rule that nothing else depends on ARC."""

from __future__ import annotations

import ast
import types
from pathlib import Path

from tests.public_api import assert_all_is_honest

import mailwarden.arc as arc

SRC = Path(arc.__file__).resolve().parents[1]  # src/mailwarden
# RFC 8617 is moving to Historic: only the verdict pipeline (and the check command that
# drives it) and the message analyzer, which reports ARC sets, may use ARC, so it can be
# dropped without touching anything else. The gateway's forwarding seals what it forwards
# (optional: [forwarding] arc_seal).
MAY_IMPORT_ARC = {
    "gateway/forward.py",
    "pipeline/checks.py",
    "pipeline/results.py",
    "cli/check.py",
    "analyze/explain.py",
    "analyze/reverification.py",
}
# ARC builds on these and nothing higher up (no CLI, gateway, policy or verdict).
ARC_MAY_IMPORT = {"authres", "dkim", "dmarc", "dns", "frozen", "message"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_all_is_complete_and_exact() -> None:
    exported = set(arc.__all__)
    assert len(exported) == len(arc.__all__)
    for name in exported:
        assert hasattr(arc, name), name
    public = {
        name
        for name, value in vars(arc).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == exported
    assert callable(arc.seal)  # the function, not the submodule of the same name


def test_nothing_else_imports_arc() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith("arc/") or relative in MAY_IMPORT_ARC:
            continue
        if any(n == "mailwarden.arc" or n.startswith("mailwarden.arc.") for n in _imports(path)):
            offenders.append(relative)
    assert offenders == []


def test_arc_imports_only_lower_layers() -> None:
    for path in (SRC / "arc").glob("*.py"):
        for name in _imports(path):
            if name.startswith("mailwarden."):
                assert name.split(".")[1] in ARC_MAY_IMPORT | {"arc"}, (path.name, name)


def test_package_all_lists_exactly_its_public_names() -> None:
    assert_all_is_honest("mailwarden.arc")
