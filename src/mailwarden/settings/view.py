"""The settings as JSON for an administrator to read, with every secret hidden.

Hidden: the value of every key named like a secret (password, token, secret, key, credential),
the password in every URL (`redis://:PASSWORD@host`, `postgresql://user:PASSWORD@host`, and a
`password=` parameter), and the key label of a DNS list that needs one (`KEY.zen.dq...`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mailwarden.dnsbl import DNSList

__all__ = ["HIDDEN", "redacted"]

HIDDEN = "(hidden)"
_SECRET_NAME = re.compile(r"password|passwd|token|secret|credential|(^|_)key($|_|s$)", re.I)
_PASSWORD_PARAM = re.compile(r"(password|passwd|pass|pwd|token|key|secret)=[^&;\s]*", re.I)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def _url(text: str) -> str:
    """`text` with a URL's password (userinfo or a password parameter) hidden."""
    text = _PASSWORD_PARAM.sub(lambda m: f"{m.group(1)}={HIDDEN}", text)
    if not _URL.match(text):
        return text
    try:
        parts = urlsplit(text)
        userinfo, at, host = parts.netloc.rpartition("@")
    except ValueError:
        return HIDDEN  # not a URL we can take apart: hide it all
    if not at:
        return text
    user, colon, _ = userinfo.partition(":")
    netloc = f"{user}:{HIDDEN}@{host}" if colon else f"{HIDDEN}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _value(value: Any) -> Any:
    if isinstance(value, DNSList):
        out = _value_of_dataclass(value)
        if value.needs_key and "." in value.zone:  # KEY.zone: the key label is a secret
            out["zone"] = f"{HIDDEN}.{value.zone.split('.', 1)[1]}"
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _value_of_dataclass(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _hide(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return _url(value)
    if isinstance(value, bytes):
        return HIDDEN
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no infinity
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def _hide(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name) and isinstance(value, str | bytes) and value:
        return HIDDEN
    return _value(value)


def _value_of_dataclass(value: Any) -> dict[str, Any]:
    return {
        f.name: _hide(f.name, getattr(value, f.name))
        for f in dataclasses.fields(value)
        if not f.name.startswith("_")
    }


def redacted(settings: Any) -> dict[str, Any]:
    """`settings` (a `Settings`, or any section) as JSON values, secrets hidden."""
    return _value_of_dataclass(settings)
