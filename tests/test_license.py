"""The repository's LICENSE is the licence pyproject.toml declares."""

from __future__ import annotations

import tomllib

from tests.testdata import PROJECT_ROOT


def test_license_file_matches_pyproject() -> None:
    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (PROJECT_ROOT / "LICENSE").read_text()
    assert declared == "MIT"
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 mailwarden contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
