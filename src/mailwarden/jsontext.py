"""JSON text that is always valid UTF-8: one serializer of results for every front end.

Values read from mail keep bytes that were not UTF-8 as lone surrogates (surrogateescape);
`json_safe` shows each such byte once as \\xNN, so the CLI's `--json` and the HTTP API write
the same document for the same result.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["clean_text", "dumps", "json_safe"]

_SURROGATE = re.compile("[\udc80-\udcff]")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text safe to print as UTF-8: each byte that was not UTF-8 (kept by surrogateescape as
    U+DC80..U+DCFF) shown once as \\xNN; any other lone surrogate as \\uXXXX."""
    if not _ANY_SURROGATE.search(text):
        return text
    text = _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)
    return _ANY_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_safe(data: Any) -> Any:
    """`data` (dicts, lists, tuples, strings, numbers) with every string cleaned."""
    if isinstance(data, str):
        return clean_text(data)
    if isinstance(data, dict):
        return {json_safe(k): json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def dumps(data: Any) -> str:
    """One JSON document on one line, valid UTF-8 whatever bytes the input held."""
    text = json.dumps(data, ensure_ascii=False)
    if _ANY_SURROGATE.search(text) is None:  # nothing to clean: no walk over every value
        return text
    return json.dumps(json_safe(data), ensure_ascii=False)
