"""How the front ends run their coroutines: on uvloop's event loop when it is installed (a
dependency of mailwarden on the platforms it supports) and not switched off, else on asyncio's.

Switch it off with the environment variable MAILWARDEN_UVLOOP=0 (or false, no, off), or by
passing `uvloop=False`. Nothing else changes: uvloop is a drop-in asyncio event loop, measured
in benchmarks/dns_bench.py.
"""

from __future__ import annotations

import asyncio
import os
from asyncio import selector_events
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

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
