"""How the front ends run their coroutines: on uvloop's event loop when it is installed (a
dependency of mailwarden on the platforms it supports) and not switched off, else on asyncio's.

Switch it off with the environment variable MAILWARDEN_UVLOOP=0 (or false, no, off), or by
passing `uvloop=False`. Nothing else changes: uvloop is a drop-in asyncio event loop, measured
in benchmarks/dns_bench.py.

`start(work)` runs a coroutine at once up to its first wait, as Python 3.12's eager tasks do:
work that finishes without waiting (a check on the warm path, every answer cached) costs no
task and no turn of the loop; work that waits goes on in a task of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import types
from asyncio import selector_events
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

SWITCH = "MAILWARDEN_UVLOOP"
_OFF = frozenset({"0", "false", "no", "off"})


def uvloop_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """False when the switch says off; anything else (unset included) means on."""
    return environ.get(SWITCH, "").strip().lower() not in _OFF


def loop_factory(uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when wanted and installed; None (asyncio's own loop) otherwise."""
    if uvloop is None:
        uvloop = uvloop_wanted()
    if not uvloop:
        return None
    try:
        import uvloop as module
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, uvloop: bool | None = None) -> T:
    """`asyncio.run(main)`, on the loop `loop_factory` chooses (None: the environment's say)."""
    with asyncio.Runner(loop_factory=loop_factory(uvloop)) as runner:
        return runner.run(main)


_eager = threading.local()
_Coroutine = types.CoroutineType


def running_eagerly() -> bool:
    """True inside `start`'s first step. That step runs in its caller's task, so what may look
    at its own task there (asyncio.timeout, current_task: a resolver given by the user, say)
    must be given a task of its own (`CachingResolver` does so for its inner resolver)."""
    depth: int = getattr(_eager, "depth", 0)
    return depth > 0


def start(work: Awaitable[T]) -> asyncio.Future[T]:
    """`work` started now (an asyncio future is returned as it is): run in the caller's task
    until it first waits. Finished by then, it is a done future (its result or its exception);
    else a task goes on from that wait (cancelling the task cancels the work, as with any
    task). Any other awaitable, a future of another kind included, is stepped the same way.

    Only for work that does not look at its task before its first wait (see
    `running_eagerly`): the pipeline's stages, whose only outside code, the resolver, sits
    behind a `CachingResolver`."""
    if isinstance(work, asyncio.Future):  # (not asyncio.isfuture: a failed hasattr per call)
        return work
    loop = asyncio.get_running_loop()
    try:
        finished, outcome = finish_or_start(work)
    except asyncio.CancelledError:
        future: asyncio.Future[T] = asyncio.Future(loop=loop)  # (the C class: no Python call)
        future.cancel()
        return future
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # kept for whoever reads the result, as a task keeps it
        future = asyncio.Future(loop=loop)
        future.set_exception(exc)
        return future
    if not finished:
        return outcome  # type: ignore[no-any-return]  # the task it goes on in
    future = asyncio.Future(loop=loop)
    future.set_result(outcome)
    return future


def finish_or_start(work: Awaitable[T]) -> tuple[bool, Any]:
    """`start` for a caller that reads the result itself, with no future when there is none to
    wait for: `work` run now in the caller's task until it first waits. Finished by then,
    `(True, its result)` (an exception it raised is raised here); else `(False, the task it
    goes on in)`. Same conditions as `start`."""
    steps: Generator[Any, Any, T] | Coroutine[Any, Any, T]
    steps = work if type(work) is _Coroutine else work.__await__()
    depth: int = getattr(_eager, "depth", 0)
    _eager.depth = depth + 1
    try:
        waiting_for = steps.send(None)
    except StopIteration as finished:
        return True, finished.value
    finally:
        _eager.depth = depth
    resumed = _Resumed(steps, waiting_for)
    task = asyncio.get_running_loop().create_task(_rest(resumed))
    task.add_done_callback(resumed.abandon)
    return False, task


async def _rest(resumed: _Resumed[T]) -> T:
    return await resumed


class _Resumed(Generic[T]):
    """The rest of a started coroutine: first the wait it stopped at, then every step, with
    what the task sends or throws (its cancellation) passed on."""

    __slots__ = ("entered", "steps", "waiting_for")

    def __init__(
        self, steps: Generator[Any, Any, T] | Coroutine[Any, Any, T], waiting_for: Any
    ) -> None:
        self.steps = steps
        self.waiting_for = waiting_for
        self.entered = False

    def abandon(self, task: asyncio.Future[T]) -> None:
        """The task ended without ever running (cancelled before its first step: asyncio then
        never starts its coroutine): the work is cancelled where it waits all the same, so its
        clean-up runs now (a query the DNS cache shares in flight is settled), not whenever
        the garbage collector closes it."""
        if self.entered:
            return
        self.entered = True
        try:
            self.steps.throw(asyncio.CancelledError())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # ended, as a cancelled task's work ends: nobody reads it
            return
        self.steps.close()  # it caught the cancellation and waits again: nothing will resume it

    def __await__(self) -> Generator[Any, Any, T]:
        self.entered = True
        steps, waiting_for = self.steps, self.waiting_for
        while True:
            try:
                sent = yield waiting_for
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:
                try:
                    waiting_for = steps.throw(exc)
                except StopIteration as finished:
                    result: T = finished.value
                    return result
            else:
                try:
                    waiting_for = steps.send(sent)
                except StopIteration as finished:
                    result = finished.value
                    return result


async def close_listener(server: asyncio.AbstractServer) -> None:
    """Close a listening server without leaking a connection it has just accepted.

    asyncio's own loop (CPython 3.11) accepts a connection in one step and makes its transport
    in a task one step later; a `Server.close()` between the two makes that transport's
    constructor fail an assertion (`Server._attach`), leaving the accepted socket open until
    the garbage collector finds it: a descriptor leaked per connection caught at shutdown. So
    the listening sockets stop being read first, then the loop turns until every accept already
    made has its transport and protocol (three turns cover the worst order of callbacks), and
    only then is the server closed. uvloop makes the transport in the accepting step and does
    not need this.
    """
    loop = asyncio.get_running_loop()
    if isinstance(loop, selector_events.BaseSelectorEventLoop):
        for sock in getattr(server, "sockets", None) or ():
            loop.remove_reader(sock.fileno())
        for _ in range(3):
            await asyncio.sleep(0)
    server.close()
