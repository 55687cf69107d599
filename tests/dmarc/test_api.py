"""The public API of mailwarden.dmarc, mailwarden.authres and mailwarden.address: every name in
__all__ exists, and every public name is in __all__."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest
from tests.public_api import assert_all_is_honest

import mailwarden.address
import mailwarden.authres
import mailwarden.dmarc


@pytest.mark.parametrize(
    "module", [mailwarden.dmarc, mailwarden.authres, mailwarden.address], ids=lambda m: m.__name__
)
def test_all_is_honest(module: ModuleType) -> None:
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__)
    assert all(hasattr(module, name) for name in exported)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name not in ("annotations",)
        and getattr(value, "__module__", module.__name__).startswith(module.__name__)
    }
    assert public <= exported, public - exported


def test_colleague_dkim_results_fit_the_protocols() -> None:
    """mailwarden.dkim.DKIMResult has what DMARC (DKIMLike) and authres (DKIMReport) read."""
    from mailwarden.dkim import DKIMReason, DKIMResult, DKIMStatus

    result = DKIMResult(
        DKIMStatus.PASS, "ok", DKIMReason.VERIFIED, domain="example.com", selector="s"
    )
    for attribute in ("result", "domain", "reason", "selector", "algorithm", "header_b"):
        assert isinstance(getattr(result, attribute), str)
    assert isinstance(result.identity, str)
    assert str(result.result) == "pass"


def test_package_all_lists_exactly_its_public_names() -> None:
    assert_all_is_honest("mailwarden.dmarc")
