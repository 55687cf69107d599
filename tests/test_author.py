"""mailwarden.author: the From field(s) read once, and a recurring From read once for all."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailwarden import author
from mailwarden.author import AuthorProblem, read_authors


def test_a_recurring_from_field_is_read_once() -> None:
    first = read_authors(["News <news@example.com>"])
    again = read_authors(("News <news@example.com>",))
    assert again is first  # kept: the same immutable value
    assert first.domain == "example.com"


def test_a_long_from_field_is_read_every_time_and_not_kept() -> None:
    long = "A" * 600 + " <a@example.com>"
    before = author._read_cached.cache_info().currsize
    first = read_authors([long])
    assert read_authors([long]) is not first
    assert read_authors([long]) == first
    assert author._read_cached.cache_info().currsize == before


def test_problems_are_kept_like_answers() -> None:
    assert read_authors([]).problem is AuthorProblem.NO_FROM
    assert read_authors(["a@b.example", "c@d.example"]).problem is AuthorProblem.SEVERAL_FROM
    assert read_authors(["not an address <"]).problem is AuthorProblem.SYNTAX


@given(st.lists(st.text(max_size=80), max_size=3))
def test_kept_or_not_the_reading_is_the_same(values: list[str]) -> None:
    assert read_authors(values) == author._read(tuple(values))
