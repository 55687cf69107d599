"""The public API of the network checks: every name in __all__ exists, and nothing more is
exported by the packages than they declare."""

from __future__ import annotations

import importlib

import pytest
from tests.public_api import assert_all_is_honest

from mailwarden.symbols import Symbol

MODULES = ["mailwarden.symbols", "mailwarden.iprev", "mailwarden.helo", "mailwarden.dnsbl",
           "mailwarden.greylist"]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_all_is_honest(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"


def test_symbol_text() -> None:
    assert str(Symbol("RBL_ZEN_SBL", 4.0, "listed")) == "RBL_ZEN_SBL(4): listed"
    assert str(Symbol("IPREV_PASS")) == "IPREV_PASS(0)"


def test_package_all_lists_exactly_its_public_names() -> None:
    assert_all_is_honest("mailwarden.greylist")
