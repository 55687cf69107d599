"""mailwarden.runtime: uvloop unless switched off, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

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


# -- start: eager until the first wait ---------------------------------------------------------


async def test_start_finishes_work_that_never_waits_without_a_task() -> None:
    steps: list[str] = []

    async def work() -> int:
        steps.append("ran")
        return 7

    before = len(asyncio.all_tasks())
    future = runtime.start(work())
    assert steps == ["ran"]  # at once, not on the loop's next turn
    assert future.done()
    assert not isinstance(future, asyncio.Task)
    assert len(asyncio.all_tasks()) == before
    assert await future == 7


async def test_start_keeps_an_exception_for_the_reader() -> None:
    async def work() -> None:
        raise ValueError("no")

    future = runtime.start(work())
    assert future.done()
    with pytest.raises(ValueError, match="no"):
        future.result()


def _started(work: Any) -> Any:
    return runtime.start(work)


def _finished_or_started(work: Any) -> Any:
    finished, task = runtime.finish_or_start(work)
    assert not finished
    return task


@pytest.mark.parametrize("launch", [_started, _finished_or_started])
async def test_work_goes_on_in_a_task_after_the_first_wait(launch: Any) -> None:
    """`start` and `finish_or_start` alike: the first step in the caller's task, the rest (every
    later step) in the new one."""
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[object] = []

    async def work() -> str:
        seen.append(asyncio.current_task())
        got = await gate
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        return got + "!"

    task = launch(work())
    assert isinstance(task, asyncio.Task)
    assert not task.done()
    gate.set_result("opened")
    assert await task == "opened!"
    assert seen == [asyncio.current_task(), task]


async def test_cancelling_the_task_cancels_the_work_where_it_waits() -> None:
    cleaned: list[str] = []

    async def work() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append("finally ran")

    task = runtime.start(work())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally ran"]


async def test_work_that_handles_its_cancellation_returns() -> None:
    async def work() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "handled"
        return "slept"

    task = runtime.start(work())
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "handled"


async def test_a_future_is_returned_as_it_is() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    assert runtime.start(future) is future


async def test_finish_or_start_gives_the_result_of_work_that_never_waits() -> None:
    """No future at all for work finished in its first step (run eagerly); an exception it
    raised is raised to the caller."""
    eager: list[bool] = []

    async def work() -> int:
        eager.append(runtime.running_eagerly())
        return 7

    async def fails() -> None:
        raise ValueError("no")

    before = len(asyncio.all_tasks())
    assert runtime.finish_or_start(work()) == (True, 7)
    assert eager == [True]
    assert len(asyncio.all_tasks()) == before
    with pytest.raises(ValueError, match="no"):
        runtime.finish_or_start(fails())
    assert not runtime.running_eagerly()


async def test_running_eagerly_only_inside_the_first_step() -> None:
    seen: list[bool] = []

    async def work() -> None:
        seen.append(runtime.running_eagerly())
        await asyncio.sleep(0)
        seen.append(runtime.running_eagerly())

    assert not runtime.running_eagerly()
    await runtime.start(work())
    assert seen == [True, False]
    assert not runtime.running_eagerly()


async def test_a_resolver_with_its_own_timeout_behind_the_cache_gets_its_own_task() -> None:
    """A user's resolver may bind a timeout to its task before it first waits: started
    eagerly, the cache hands it a task of its own, so its timeout never cancels the caller."""
    from mailwarden.dns import RdType, StaticResolver, TemporaryFailure
    from mailwarden.dns.cache import CachingResolver

    class Timing(StaticResolver):
        async def resolve(self, name: str, rdtype: RdType) -> object:  # type: ignore[override]
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(1)
            except TimeoutError:
                raise TemporaryFailure(name, rdtype, "timeout") from None
            return await super().resolve(name, rdtype)

    cache = CachingResolver(Timing())
    future = runtime.start(cache.resolve("example.com", RdType.A))
    await asyncio.sleep(0.05)  # the resolver's timeout must not cancel this task meanwhile
    with pytest.raises(TemporaryFailure):
        await future


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


@pytest.mark.parametrize("launch", [_started, _finished_or_started])
async def test_work_cancelled_before_its_task_ran_is_told(launch: Any) -> None:
    """The task cancelled before its first step (asyncio then never runs its coroutine): the
    work still gets the cancellation where it waits, so its clean-up runs now, not when the
    garbage collector finds it (a DNS query shared in flight was left unsettled till then)."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def work() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    task = launch(work())
    task.cancel()  # before the loop ever ran it
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled", "finally"]
