"""The public API: __all__ lists exactly what the packages export, nothing missing."""

from __future__ import annotations

import importlib

import pytest
from tests.public_api import assert_all_is_honest


@pytest.mark.parametrize(
    "name",
    [
        "mailwarden.dkim",
        "mailwarden.dkim.canon",
        "mailwarden.dkim.crypto",
        "mailwarden.dkim.key",
        "mailwarden.dkim.keygen",
        "mailwarden.dkim.sign",
        "mailwarden.dkim.tags",
        "mailwarden.dkim.result",
        "mailwarden.dkim.signature",
        "mailwarden.dkim.verify",
        "mailwarden.message",
    ],
)
def test_all_is_honest(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.{attribute}"


def test_package_reexports_every_submodule_entry_point() -> None:
    dkim = importlib.import_module("mailwarden.dkim")
    for sub in ("canon", "tags", "result", "signature", "verify", "sign"):
        module = importlib.import_module(f"mailwarden.dkim.{sub}")
        missing = set(module.__all__) - set(dkim.__all__)
        assert not missing, (sub, missing)


def test_package_all_lists_exactly_its_public_names() -> None:
    assert_all_is_honest("mailwarden.dkim")
