"""mailwarden.runtime: uvloop unless switched off, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st

from mailwarden import runtime


async def loop_kind() -> str:
    return "uvloop" if isinstance(asyncio.get_running_loop(), uvloop.Loop) else "asyncio"


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        (None, True),
        ("", True),
        ("1", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        (" OFF ", False),
        ("No", False),
    ],
)
def test_the_switch(value: str | None, wanted: bool) -> None:
    environ = {} if value is None else {runtime.SWITCH: value}
    assert runtime.uvloop_wanted(environ) is wanted


@given(st.text(max_size=8))
def test_only_the_off_words_turn_it_off(value: str) -> None:
    off = value.strip().lower() in {"0", "false", "no", "off"}
    assert runtime.uvloop_wanted({runtime.SWITCH: value}) is not off


def test_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.SWITCH, raising=False)
    assert runtime.run(loop_kind()) == "uvloop"
    assert runtime.run(loop_kind(), uvloop=False) == "asyncio"


def test_run_on_asyncio_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.SWITCH, "0")
    assert runtime.run(loop_kind()) == "asyncio"
    assert runtime.run(loop_kind(), uvloop=True) == "uvloop"


def test_run_without_uvloop_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.SWITCH, raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails
    assert runtime.loop_factory() is None
    assert runtime.run(asyncio.sleep(0, "done")) == "done"


def test_run_returns_and_raises_like_asyncio_run() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        runtime.run(fails())
    assert runtime.run(asyncio.sleep(0, 42)) == 42
