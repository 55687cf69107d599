"""How a section of the settings declares its keys, with no dependency of its own.

Sections live beside the code they configure (the policy's in `mailwarden.policy`, the
gateway's in `mailwarden.settings`); `setting(...)` gives a dataclass field the metadata the one
reader (`mailwarden.settings.reader`) understands, and `InvalidSetting` is what a section's
`validate()` raises for a check across its fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["InvalidSetting", "setting"]

_MISSING: Any = dataclasses.MISSING


class InvalidSetting(ValueError):
    """A section's own check failed; `key` is relative to the section ("" for all of it)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


def setting(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    convert: Callable[[Any], Any] | None = None,
    each: Callable[[Any], Any] | None = None,
    path: bool = False,
    false_is_none: bool = False,
    flatten: bool = False,
    internal: bool = False,
) -> Any:
    """A dataclass field with the reader's metadata."""
    metadata = {
        key: value
        for key, value in (
            ("min", min),
            ("max", max),
            ("above", above),
            ("convert", convert),
            ("each", each),
            ("path", path or None),
            ("false_is_none", false_is_none or None),
            ("flatten", flatten or None),
            ("internal", internal or None),
        )
        if value is not None
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)
