"""mailwarden.runtime: uvloop unless switched off, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import warnings
from collections.abc import Awaitable, Callable

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


def _closed_by_peer(client: socket.socket) -> bool:
    """True when the server side has closed the connection (EOF or reset) within 2 s."""
    client.settimeout(2.0)
    try:
        while client.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def _race_close(close: Callable[[asyncio.Server], Awaitable[None]], turns: int) -> bool:
    """Connect, let the loop turn `turns` times (the accept and the making of its transport
    happen in different turns), close the listener; was the accepted connection closed, and
    nothing left for the garbage collector?"""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    gc.disable()
    try:
        with socket.create_connection(server.sockets[0].getsockname()[:2]) as client:
            for _ in range(turns):
                await asyncio.sleep(0)
            await close(server)
            await asyncio.sleep(0.05)  # the accepted connection's handler runs
            closed = _closed_by_peer(client)
    finally:
        gc.enable()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    return closed and not leaked


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_close_listener_leaves_no_accepted_connection_open(turns: int) -> None:
    assert isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)  # asyncio's own loop
    assert await _race_close(runtime.close_listener, turns)


async def test_a_plain_close_can_leak_what_close_listener_does_not() -> None:
    """The race close_listener exists for is real on this Python: some order of turns leaves a
    socket open until garbage collection (if CPython fixes it, this test says so)."""

    async def plain(server: asyncio.Server) -> None:
        server.close()

    outcomes = [await _race_close(plain, turns) for turns in range(4)]
    assert not all(outcomes), "asyncio no longer leaks here: close_listener's dance can go"


async def test_close_listener_on_uvloop() -> None:
    """uvloop's server has no such race; close_listener just closes it."""

    async def main() -> bool:
        return await _race_close(runtime.close_listener, 2)

    assert await asyncio.to_thread(runtime.run, main(), uvloop=True)
