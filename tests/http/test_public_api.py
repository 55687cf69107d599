"""The HTTP API's public names, and those of the modules it brought down for every front end
to share: every name in __all__ exists, and every public name is listed."""

from __future__ import annotations

import pytest
from tests.public_api import assert_all_is_honest

MODULES = [
    "mailwarden.http",
    "mailwarden.jsontext",
    "mailwarden.pipeline.inputs",
    "mailwarden.settings.view",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_honest(name: str) -> None:
    assert_all_is_honest(name)
