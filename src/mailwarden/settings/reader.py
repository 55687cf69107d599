"""The one reader of configuration: TOML tables onto typed, frozen section dataclasses.

Every section is a frozen dataclass whose fields are its keys, with their defaults. The reader
walks a table against the fields' type hints, so a new setting needs only a new field:

    bool, int, float (finite; bounds from the field's metadata), str, StrEnum values,
    tuple[X, ...] from arrays, Mapping[str, X] from tables, nested dataclasses from
    sub-tables (also as the items of an array of tables or the values of a table),
    `X | None` (TOML `false` means None where `false_is_none` is set), and
    anything else through a `convert` function in the metadata.

Field metadata (built with `mailwarden.schema.setting`): `min`/`max` (inclusive bounds), `above`
(exclusive lower bound), `convert` (the whole value), `each` (each item of an array), `path`
(relative to the configuration file's directory), `false_is_none`, `flatten` (a nested
dataclass read from the same table), `internal` (never read from a file). A section may define
`validate()`, raising `InvalidSetting` for checks across its fields.

Unknown tables and keys are errors that name them; every error is a `ConfigError` naming the
file (or the command-line option that set the value), the dotted key and the reason.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mailwarden.schema import InvalidSetting

from .errors import ConfigError

__all__ = ["Origin", "read_section"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where values come from: the file (its name and directory) and, for the keys set on the
    command line, the option that set each (errors name it; its paths are relative to the
    working directory)."""

    source: str = "<defaults>"
    base: Path | None = None
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.options.get(key, self.source), key, reason)

    def base_of(self, key: str) -> Path | None:
        return None if key in self.options else self.base


def read_section(cls: type[T], table: Mapping[str, Any], origin: Origin, prefix: str) -> T:
    """An instance of the dataclass `cls` from `table`; ConfigError on any mistake."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]  # type: ignore[arg-type]
    flattened = [f for f in fields if f.metadata.get("flatten")]
    known = {f.name for f in fields if not f.metadata.get("flatten")}
    for inner in flattened:
        known |= {
            f.name for f in dataclasses.fields(hints[inner.name]) if not f.metadata.get("internal")
        }
    for key, value in table.items():
        if key not in known:
            choices = ", ".join(sorted(known))
            what = "table" if isinstance(value, Mapping) else "setting"
            raise origin.error(_join(prefix, key), f"unknown {what} (known: {choices})")
    values: dict[str, Any] = {}
    for f in fields:
        key = _join(prefix, f.name)
        if f.metadata.get("flatten"):
            inner_keys = {g.name for g in dataclasses.fields(hints[f.name])}
            subset = {k: v for k, v in table.items() if k in inner_keys}
            values[f.name] = read_section(hints[f.name], subset, origin, prefix)
        elif f.name in table:
            values[f.name] = _convert(table[f.name], hints[f.name], f.metadata, origin, key)
    try:
        section = cls(**values)
    except InvalidSetting as exc:
        raise origin.error(_join(prefix, exc.key), exc.reason) from None
    except ValueError as exc:
        raise origin.error(prefix, str(exc)) from None
    validate = getattr(section, "validate", None)
    if callable(validate):
        try:
            validate()
        except InvalidSetting as exc:
            raise origin.error(_join(prefix, exc.key), exc.reason) from None
    return section


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix and key else prefix or key


def _convert(value: Any, hint: Any, meta: Mapping[str, Any], origin: Origin, key: str) -> Any:
    """One value of the type `hint`."""
    convert = meta.get("convert")
    if convert is not None:
        try:
            return convert(value)
        except (ValueError, TypeError) as exc:
            raise origin.error(key, str(exc)) from None
    if meta.get("false_is_none") and value is False:
        return None
    hint = _without_none(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise origin.error(key, f"expected a table ([{key}])")
        return read_section(hint, value, origin, key)  # type: ignore[arg-type]
    origin_type = typing.get_origin(hint)
    if origin_type is tuple:
        item_type = typing.get_args(hint)[0]
        if isinstance(value, str) and item_type is str:
            value = [value]  # a single string stands for a list of one
        if not isinstance(value, list):
            raise origin.error(key, f"expected an array{_of(item_type)}")
        return tuple(
            _item(item, item_type, meta, origin, f"{key}[{index}]", key)
            for index, item in enumerate(value)
        )
    if origin_type in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise origin.error(key, f"expected a table ([{key}])")
        value_type = typing.get_args(hint)[1]
        return {
            str(name): _scalar(item, value_type, meta, origin, f"{key}.{name}")
            for name, item in value.items()
        }
    return _scalar(value, hint, meta, origin, key)


def _item(item: Any, hint: Any, meta: Mapping[str, Any], origin: Origin, key: str, at: str) -> Any:
    each = meta.get("each")
    if each is not None:
        try:
            return each(item)
        except (ValueError, TypeError) as exc:
            raise origin.error(at, f"item {key[len(at) :]}: {exc}") from None
    return _scalar(item, hint, meta, origin, key)


def _scalar(value: Any, hint: Any, meta: Mapping[str, Any], origin: Origin, key: str) -> Any:
    if dataclasses.is_dataclass(hint):  # an item of an array of tables, a value of a table
        if not isinstance(value, Mapping):
            raise origin.error(key, "expected a table")
        return read_section(hint, value, origin, key)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise origin.error(key, f"expected true or false, got {_shown(value)}")
        return value
    if hint in (int, float):
        return _number(value, hint, meta, origin, key)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            choices = ", ".join(f'"{member.value}"' for member in hint)
            raise origin.error(key, f"expected one of {choices}, got {_shown(value)}") from None
    if hint is str:
        if not isinstance(value, str):
            raise origin.error(key, f"expected a string, got {_shown(value)}")
        if "\x00" in value:
            raise origin.error(key, "a NUL character is not allowed")
        if meta.get("path") and value not in ("", "-"):
            base = origin.base_of(key.split("[")[0])
            if base is not None and not Path(value).is_absolute():
                return str(base / value)
        return value
    raise origin.error(key, f"cannot read a value of type {hint!r}")  # a bug in a section


def _number(value: Any, hint: type, meta: Mapping[str, Any], origin: Origin, key: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise origin.error(key, f"expected a number, got {_shown(value)}")
    if not math.isfinite(value):
        raise origin.error(key, f"expected a finite number, got {value!r}")
    if hint is int and not isinstance(value, int):
        raise origin.error(key, f"expected a whole number, got {value!r}")
    low, high, above = meta.get("min"), meta.get("max"), meta.get("above")
    if low is not None and value < low:
        raise origin.error(key, f"must be at least {low:g}, got {value!r}")
    if high is not None and value > high:
        raise origin.error(key, f"must be at most {high:g}, got {value!r}")
    if above is not None and value <= above:
        raise origin.error(key, f"must be more than {above:g}, got {value!r}")
    return hint(value)


def _without_none(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _of(item_type: Any) -> str:
    names = {str: " of strings", int: " of whole numbers", float: " of numbers"}
    return names.get(item_type, "")


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
