"""JSON text of results: valid UTF-8 whatever bytes the values held."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mailwarden.jsontext import clean_text, dumps, json_safe

# text with lone surrogates: bytes kept by surrogateescape (U+DC80..U+DCFF) and others
TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    ),
    max_size=12,
)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=20,
)


@given(VALUES)
def test_dumps_is_the_cleaned_document(data: Any) -> None:
    """The fast path (no surrogate anywhere) and the cleaning walk write the same text."""
    text = dumps(data)
    assert text == json.dumps(json_safe(data), ensure_ascii=False)
    text.encode("utf-8")  # never a lone surrogate left
    assert json.loads(text) == json.loads(json.dumps(json_safe(data)))


def test_undecodable_bytes_shown_once_each() -> None:
    value = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    assert clean_text(value) == "caf\\xe9 \\xff"
    assert (
        dumps({value: [value, "\ud800"]})
        == '{"caf\\\\xe9 \\\\xff": ["caf\\\\xe9 \\\\xff", "\\\\ud800"]}'
    )
