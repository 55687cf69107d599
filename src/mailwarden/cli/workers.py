"""Worker processes for `check --batch --workers N`, `serve --workers N` and
`milter --workers N`: all the cores.

Each worker is a process forked from the command, with its own event loop, pipeline and DNS
cache (nothing is shared but what the stores share: the greylist in SQLite WAL or Redis, the
report store, and the gateway's connection counts in `SharedAdmission`).

* Batch: the lines of one sender domain go to one worker while the load stays even
  (`Shards`: its cache answers that domain's lookups), in chunks of the lines already read;
  each worker answers its lines in order, and the command writes them in input order. A bad
  line is an error line as in one process; a worker that dies turns its unanswered lines
  into internal errors (exit 70).
* Gateway and milter: the supervisor (this process) starts N workers listening on the same
  port (SO_REUSEPORT; a milter's Unix socket is bound once here and inherited), the first
  alone (a start-up problem is told once), the others once it listens, announces once all
  listen, restarts a worker that dies (a crash loop, a worker dying five times in a minute,
  stops everything: exit 1), and on SIGTERM or SIGINT sends SIGTERM to every worker, waits
  for their orderly stop (SIGKILL after `STOP_TIMEOUT`), and exits 0. SIGHUP is passed on
  to every worker (each reloads).

Reload and stop behave as in one process:

* SIGHUP: the supervisor sends it to every listening worker and says the outcome once, when
  all of them have reloaded ("settings reloaded" then means every worker uses them; a worker
  whose outcome differs is named). A second SIGHUP during a reload waits for it. What the
  workers reloaded (the settings) is kept: a worker started later (a restart) gets it, so it
  does not fall back to the settings of the start; one that was starting during the SIGHUP
  reloads once it listens.
* SIGTERM: every worker closes its listener, then waits until every other worker has closed
  its own (`StopBarrier`, in shared memory; at most `BARRIER_TIMEOUT`) before telling its
  idle sessions 421: a client told "shutting down" finds no worker still accepting.
* The supervisor killed (SIGKILL, the OOM killer): each worker gets SIGTERM from the kernel
  (PR_SET_PDEATHSIG) and stops in order, instead of living on with the port.

Metrics: before forking the gateway's workers, `mailwarden.metrics.use_worker_processes` is
called (Prometheus' multiprocess mode: /metrics shows the sum); a dead worker is reported with
`metrics.worker_exited`. A batch has no /metrics: its workers count alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import json
import mmap
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import connection, get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import click

from mailwarden import metrics, runtime
from mailwarden.dns import normalize
from mailwarden.spf import split_sender

from .common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_PARTIAL,
    json_line,
    line_outcome,
    one_line,
)
from .lifecycle import STOP_GRACE, Draining

__all__ = [
    "BARRIER_TIMEOUT",
    "MAX_WORKERS",
    "STOP_TIMEOUT",
    "InStep",
    "StopBarrier",
    "Worker",
    "default_workers",
    "prepare_worker_processes",
    "reserve_port",
    "run_batch_workers",
    "supervise",
    "workers_option",
]

MAX_WORKERS = 64
# seconds a worker has for its orderly stop before SIGKILL: its own grace for the
# transactions in flight (lifecycle.STOP_GRACE, 30 s), then a margin to cut and drain
STOP_TIMEOUT = STOP_GRACE + 5.0
BARRIER_TIMEOUT = 2.0  # seconds a stopping worker waits for the others to stop accepting
CRASH_LIMIT = 5  # deaths of one worker within CRASH_WINDOW seconds: a crash loop
CRASH_WINDOW = 60.0

_fork = get_context("fork")


def default_workers() -> int:
    """The number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def workers_option(*, cpus_by_default: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--workers N; without it, the number of CPUs (`cpus_by_default`) or 1."""
    from .common import BoundedInt

    default = "the number of CPUs" if cpus_by_default else "1"
    return click.option(
        "--workers",
        type=BoundedInt(1, MAX_WORKERS),
        default=None,
        metavar="N",
        help=f"Worker processes, each with its own event loop and cache (default: {default}; "
        "1: this process only).",
    )


def prepare_worker_processes() -> Callable[[], None]:
    """Before forking the gateway's workers: the metrics count in shared files, so the
    `/metrics` of any worker shows the sum (`mailwarden.metrics.use_worker_processes`).
    Returns what to do at the end: back to counting in memory (`use_one_process`: the mode is
    process-wide and a process started later, or this one going on as an in-process caller
    does, must not count into those files) or to the multi-process directory set before; the
    directory stays, as this process's own figures live in it."""
    hook = getattr(metrics, "use_worker_processes", None)
    if hook is None:
        return lambda: None
    variable = "PROMETHEUS_MULTIPROC_DIR"
    before = os.environ.get(variable)
    hook(Path(tempfile.mkdtemp(prefix="mailwarden-metrics-")))

    def restore() -> None:
        if before is None:
            metrics.use_one_process()
        else:
            os.environ[variable] = before

    return restore


def _flush() -> None:
    """Nothing buffered may be written twice (a forked child flushes its copy on exit)."""
    sys.stdout.flush()
    sys.stderr.flush()


# -- batch -----------------------------------------------------------------------------------

Evaluate = Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]]


def _batch_worker(
    tasks: Connection,
    results: Connection,
    make_evaluate: Callable[[], Evaluate],
    concurrency: int,
    error_fields: dict[str, Any] | None,
    siblings: list[tuple[Connection, Connection]],
) -> None:
    """A worker process: lists of lines in from `tasks`, lists of (kind, JSON text) out on
    `results`, in the order the lines came; the end of `tasks` ends it. The command's ends of
    the pipes of the workers forked before this one are closed here: held open, a worker
    would never see the end of its lines when the command dies."""
    for task_in, result_out in siblings:
        task_in.close()
        result_out.close()
    _as_command(lambda: _batch_work(tasks, results, make_evaluate, concurrency, error_fields))


def _batch_work(
    tasks: Connection,
    results: Connection,
    make_evaluate: Callable[[], Evaluate],
    concurrency: int,
    error_fields: dict[str, Any] | None,
) -> None:
    evaluate = make_evaluate()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        incoming: asyncio.Queue[list[tuple[int, bytes]] | None] = asyncio.Queue()
        order: collections.deque[asyncio.Future[tuple[str, dict[str, Any]]] | None]
        order = collections.deque()
        more = asyncio.Event()
        slots = asyncio.Semaphore(concurrency)

        def reader() -> None:
            while True:
                try:
                    lines = tasks.recv()
                except (EOFError, OSError):
                    lines = None
                loop.call_soon_threadsafe(incoming.put_nowait, lines)
                if lines is None:
                    return

        threading.Thread(target=reader, daemon=True).start()

        async def feed() -> None:
            while (lines := await incoming.get()) is not None:
                for number, raw in lines:
                    await slots.acquire()
                    task = asyncio.ensure_future(line_outcome(number, raw, evaluate, error_fields))
                    task.add_done_callback(lambda _: slots.release())
                    order.append(task)
                    more.set()
            order.append(None)
            more.set()

        async def write() -> None:
            while True:
                while not order:
                    more.clear()
                    await more.wait()
                task = order.popleft()
                if task is None:
                    break
                kind, data = await task
                answers = [(kind, json_line(data))]
                while order and (ready := order[0]) is not None and ready.done():
                    order.popleft()  # one send for every answer already there
                    kind, data = ready.result()
                    answers.append((kind, json_line(data)))
                results.send(answers)

        await asyncio.gather(feed(), write())

    runtime.run(main())


def sender_domain(raw: bytes) -> str | None:
    """What a `check --batch` line's lookups are mostly about: the domain SPF checks (its MAIL
    FROM's, its HELO name's for the null sender); None when the line cannot say (it is checked
    all the same, and answered with its error)."""
    try:
        item = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(item, dict):
        return None
    sender, helo = item.get("mail_from") or "", item.get("helo") or ""
    if not isinstance(sender, str) or not isinstance(helo, str):
        return None
    return normalize(split_sender(sender, helo)[1]) or None


SHARD_SLACK = 64
"""Lines a worker may be given beyond the least-loaded one before its domains go elsewhere."""


class Shards:
    """Which worker checks a line: the same worker for every line of one domain, so one
    worker's cache answers that domain's lookups (spread round-robin, each worker would ask
    them all again), unless that worker already has `SHARD_SLACK` lines more than another
    (one domain sending most of the mail is still spread over every core)."""

    def __init__(self, workers: int, key: Callable[[bytes], str | None] | None) -> None:
        self.given = [0] * workers
        self.key = key
        self.next = 0

    def worker(self, raw: bytes) -> int:
        least = min(range(len(self.given)), key=self.given.__getitem__)
        name = self.key(raw) if self.key is not None else None
        if name is None:
            chosen = self.next % len(self.given)
            self.next += 1
        else:
            chosen = zlib.crc32(name.encode("utf-8", "surrogatepass")) % len(self.given)
        if self.given[chosen] - self.given[least] > SHARD_SLACK:
            chosen = least
        self.given[chosen] += 1
        return chosen


def read_chunks(stream: IO[bytes]) -> Iterator[list[bytes]]:
    """The lines of `stream` in chunks of those already readable: a file comes in large
    chunks, a pipe written slowly line by line still gives each line as soon as it comes."""
    read1 = getattr(stream, "read1", None)
    if read1 is None:
        yield from ([line] for line in stream)
        return
    rest: list[bytes] = []  # a line begun, in pieces: one over many reads is joined once
    while data := read1(1 << 16):
        if b"\n" not in data:
            rest.append(data)
            continue
        lines = b"".join([*rest, data]).split(b"\n")
        rest = [lines.pop()]
        yield [line + b"\n" for line in lines]
    if tail := b"".join(rest):
        yield [tail]


def run_batch_workers(
    stream: IO[bytes],
    make_evaluate: Callable[[], Evaluate],
    *,
    workers: int,
    concurrency: int,
    error_fields: dict[str, Any] | None = None,
    shard_key: Callable[[bytes], str | None] | None = None,
) -> int:
    """`common.run_batch` over `workers` processes: the same lines, order and exit status.
    `make_evaluate` runs in each worker (build the pipeline there, after the fork). Lines
    with the same `shard_key` go to the same worker while the load stays even (`Shards`)."""
    _flush()  # no metrics to add up: a batch has no /metrics
    pipes: list[tuple[Connection, Connection]] = []
    procs: list[BaseProcess] = []
    for _ in range(workers):
        task_out, task_in = _fork.Pipe(duplex=False)
        result_out, result_in = _fork.Pipe(duplex=False)
        proc: BaseProcess = _fork.Process(
            target=_batch_worker,
            args=(task_out, result_in, make_evaluate, concurrency, error_fields, list(pipes)),
            daemon=True,
        )
        proc.start()
        task_out.close()
        result_in.close()
        pipes.append((task_in, result_out))
        procs.append(proc)
    shards = Shards(workers, shard_key)
    assigned: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()

    def dispatch() -> None:
        """Lines to the workers, one send per worker per chunk; their order to `assigned`."""
        number = 0
        try:
            for chunk in read_chunks(stream):
                given: list[list[tuple[int, bytes]]] = [[] for _ in range(workers)]
                order = []
                for raw in chunk:
                    number += 1
                    worker = shards.worker(raw)
                    given[worker].append((number, raw))
                    order.append(worker)
                assigned.put(order)
                for worker, lines in enumerate(given):
                    if lines:
                        with contextlib.suppress(OSError):  # a dead worker: its lines are errors
                            pipes[worker][0].send(lines)
        finally:  # the workers told first: once `assigned` ends, the pipes may be closed
            for task_in, _ in pipes:
                with contextlib.suppress(OSError):
                    task_in.send(None)
            assigned.put(None)

    reading = threading.Thread(target=dispatch, daemon=True)
    reading.start()
    counts = {"error": 0, "internal": 0}
    answers: list[collections.deque[tuple[str, str]]] = [collections.deque() for _ in procs]
    dead: set[int] = set()
    out: list[str] = []

    def emit() -> None:
        """What is known is written before waiting for more (a slow pipe sees each answer)."""
        if out:
            sys.stdout.write("".join(out))
            out.clear()
        sys.stdout.flush()

    number = 0
    try:
        while True:
            if assigned.empty():
                emit()
            if (order := assigned.get()) is None:
                break
            for worker in order:
                number += 1
                if not answers[worker] and worker not in dead:
                    emit()
                    try:
                        answers[worker].extend(pipes[worker][1].recv())
                    except (EOFError, OSError):
                        procs[worker].join(1)
                        dead.add(worker)
                if answers[worker]:
                    kind, text = answers[worker].popleft()
                else:
                    kind = "internal"
                    code = procs[worker].exitcode
                    error = f"internal error: worker process died (exit {code})"
                    text = json_line({"line": number, **(error_fields or {}), "error": error})
                if kind != "ok":
                    counts["error"] += 1
                if kind == "internal":
                    counts["internal"] += 1
                out.append(text + "\n")
        emit()
    finally:
        for task_in, result_out in pipes:
            task_in.close()
            result_out.close()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if counts["internal"]:
        click.echo(
            f"mailwarden: internal error on {counts['internal']} line(s) (a bug: set "
            "MAILWARDEN_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        return EXIT_INTERNAL
    return EXIT_PARTIAL if counts["error"] else EXIT_OK


# -- gateway ---------------------------------------------------------------------------------


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A socket bound (not listening) to `host`:`port` with SO_REUSEPORT, kept by the
    supervisor: port 0 becomes one free port every worker then binds, and the port stays
    ours while a worker restarts. OSError when it cannot be bound."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


class StopBarrier:
    """The workers stop accepting as one (SIGTERM to `serve --workers N`): each closes its
    listener, says so, and waits until every listening worker has closed its own before it
    tells its idle sessions 421, so a client told "shutting down" finds no worker accepting.

    One byte per worker in memory all share (made before forking): 0 not listening, 1
    listening, 2 closed. A worker writes only its own byte; the supervisor writes a dead
    worker's 0 (a worker that dies or hangs while the others wait costs them at most
    `BARRIER_TIMEOUT`)."""

    def __init__(self, workers: int, timeout: float = BARRIER_TIMEOUT) -> None:
        self.workers = workers
        self.timeout = timeout
        self._memory = mmap.mmap(-1, workers)

    def listening(self, index: int) -> None:
        self._memory[index] = 1

    def gone(self, index: int) -> None:
        self._memory[index] = 0

    def all_closed(self) -> bool:
        """No worker listens any more."""
        return 1 not in self._memory[:]

    async def closed(self, index: int) -> bool:
        """Worker `index` closed its listener: wait (up to `timeout`) for every other one.
        True when none listens any more."""
        self._memory[index] = 2
        try:
            async with asyncio.timeout(self.timeout):
                # other processes write it: no event to wait on, a short poll
                while not self.all_closed():  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
        except TimeoutError:
            return False
        return True


@dataclass
class Worker:
    """What a gateway worker is given: its index, what the last reload handed over (`state`,
    None: the settings of the start), and its line to the supervisor."""

    index: int
    state: Any
    barrier: StopBarrier
    line: Connection = field(repr=False)

    def listening(self, host: str, port: int, extra: str = "") -> None:
        """It listens (`extra`: anything else to announce, from worker 0)."""
        self.barrier.listening(self.index)
        self.line.send(("listening", (host, port, extra)))

    def say(self, text: str) -> None:
        """A line for the supervisor to write (why it could not start)."""
        self.line.send(("say", text))

    def reloaded(self, text: str, state: Any = None) -> None:
        """The outcome of a SIGHUP (its log line, without "mailwarden: "); on success
        `state` is what a worker started later must be given."""
        self.line.send(("reloaded", (text, state)))

    async def stopped_accepting(self) -> bool:
        """Its listener is closed: wait for the others' (`StopBarrier.closed`)."""
        return await self.barrier.closed(self.index)


WorkerMain = Callable[[Worker], None]


class Listener(Protocol):
    """A server whose listener can be closed alone (its connections go on)."""

    async def close_listener(self) -> None: ...


class Server(Draining, Protocol):
    """What a worker runs: started and left with `async with`, stopped in order."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
        /,
    ) -> Any: ...


class InStep:
    """A worker's server (with its HTTP API, if any) stopping in step with the other
    workers: its listener closed, then every worker's (`Worker.stopped_accepting`), and only
    then its idle connections ended (the gateway's told 421), so no client told "shutting
    down" finds a worker still accepting."""

    def __init__(self, server: Server, listener: Listener, worker: Worker) -> None:
        self.server = server
        self.listener = listener
        self.worker = worker

    async def __aenter__(self) -> InStep:
        await self.server.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.server.__aexit__(kind, error, trace)

    async def stop_accepting(self) -> None:
        await self.listener.close_listener()
        await self.worker.stopped_accepting()
        await self.server.stop_accepting()

    async def wait_idle(self, seconds: float) -> bool:
        return await self.server.wait_idle(seconds)


def _serve_worker(worker: Worker, run: WorkerMain, supervisor: int) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)  # the worker's loop installs its own handlers
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # before the loop listens: see `supervise`
    _die_with(supervisor)
    _as_command(lambda: run(worker), worker.say)


PR_SET_PDEATHSIG = 1  # prctl(2), Linux


def _die_with(supervisor: int) -> None:
    """A worker stops (SIGTERM: its orderly stop) when the supervisor dies, even by SIGKILL,
    instead of living on with the port; gone already, it exits now. Linux only (prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before prctl: no signal will come
        os._exit(EXIT_OK)


def _say(text: str) -> None:
    click.echo(text, err=True)


def _as_command(work: Callable[[], None], say: Callable[[str], None] = _say) -> None:
    """Run `work` in a worker process as the command line would: a bad input is one line
    (`say`) and its exit status (2), a bug "internal error" and 70, never a traceback."""
    try:
        work()
    except click.ClickException as exc:
        say(f"mailwarden: error: {one_line(exc.format_message())}")
        sys.exit(EXIT_BAD_INPUT if isinstance(exc, click.UsageError) else exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("MAILWARDEN_DEBUG"):
            raise
        say(f"mailwarden: internal error: {type(exc).__name__}: {one_line(str(exc))}")
        sys.exit(EXIT_INTERNAL)


class _Reloads:
    """The supervisor's side of SIGHUP: rounds of reloads, one at a time.

    A round sends SIGHUP to every worker listening and says the outcome once all of them
    answered (or died): one line when they agree, one per outcome naming the workers when
    they do not. A SIGHUP during a round starts another once it ends. A worker started with
    settings older than the last SIGHUP (started during a round, or after one that no worker
    answered) reloads once it listens: within the round if one is open, else alone, saying
    only a failure. A reload nobody asked for (SIGHUP sent to a worker itself) is said with
    the worker's number."""

    def __init__(
        self,
        say: Callable[[str], None],
        listening: Callable[[], set[int]],
        hangup: Callable[[int], None],
    ) -> None:
        self.say = say
        self.listening = listening  # the workers listening now
        self.hangup = hangup  # SIGHUP to one worker
        self.state: Any = None  # what the last successful reload handed over
        self.begun = 0  # rounds begun
        self.settled = 0  # the last round that was answered: `state` is as of it
        self.open = False
        self.waiting: set[int] = set()
        self.outcomes: dict[int, tuple[str, Any]] = {}
        self.again = False
        self.alone: set[int] = set()  # late workers reloading outside a round
        self.since: dict[int, int] = {}  # the round each worker's settings are as of

    def started(self, index: int) -> None:
        """Worker `index` was started with `state`."""
        self.since[index] = self.settled

    def signalled(self) -> None:
        """SIGHUP came: a round for the workers listening, or another after this one."""
        if self.open:
            self.again = True
            return
        self.begun += 1
        self.open = True
        self.outcomes = {}
        self.waiting = set(self.listening())
        self.alone -= self.waiting
        for index in self.waiting:
            self.since[index] = self.begun
            self.hangup(index)
        self._maybe_end()

    def listens(self, index: int) -> None:
        """Worker `index` listens now: it reloads if a SIGHUP came after its settings."""
        if self.since.get(index, self.begun) >= self.begun:
            return
        self.since[index] = self.begun
        if self.open:
            self.waiting.add(index)
        else:
            self.alone.add(index)
        self.hangup(index)

    def reloaded(self, index: int, text: str, state: Any) -> None:
        """Worker `index` reloaded: `text` says how, `state` is not None when it succeeded."""
        if index in self.waiting:
            self.waiting.discard(index)
            self.outcomes[index] = (text, state)
            self._maybe_end()
            return
        late = index in self.alone
        self.alone.discard(index)
        if state is not None:
            self.state = state
        if state is None or not late:
            self.say(f"worker {index}: {text}")

    def died(self, index: int) -> None:
        self.alone.discard(index)
        if index in self.waiting:
            self.waiting.discard(index)
            self._maybe_end()

    def _maybe_end(self) -> None:
        if self.waiting:
            return
        self.open = False
        if self.outcomes:
            self.settled = self.begun
        said: dict[str, list[int]] = {}
        for index, (text, state) in sorted(self.outcomes.items()):
            said.setdefault(text, []).append(index)
            if state is not None:
                self.state = state
        for text, indices in said.items():
            if len(said) == 1:
                self.say(text)
            else:
                self.say(f"worker {', '.join(map(str, indices))}: {text}")
        if self.again:
            self.again = False
            self.signalled()


def supervise(
    workers: int,
    run: WorkerMain,
    announce: Callable[[str, int, str], None],
    *,
    on_death: Callable[[int], None] = lambda index: None,
    on_stop: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = lambda text: click.echo(f"mailwarden: {text}", err=True),
) -> int:
    """Run `run(worker)` in `workers` processes until SIGTERM/SIGINT; `announce` once every
    worker called `worker.listening(host, port, extra)` (worker 0's `extra` is given); SIGHUP
    reloads in every worker (`_Reloads`); `on_stop` once the stop begins, before the workers
    are told (a listener the supervisor holds for them is closed there). Returns the exit
    status: 0 after a signal or when every worker ended by itself with 0; a worker's own
    status when it fails before it ever listened (it said why); 1 after a crash loop."""
    _flush()
    restore_metrics = prepare_worker_processes()
    barrier = StopBarrier(workers)
    procs: dict[int, BaseProcess] = {}
    lines: dict[int, Connection] = {}
    listening: set[int] = set()  # listening now
    listened: set[int] = set()  # ever
    deaths: dict[int, list[float]] = {i: [] for i in range(workers)}

    def hangup(index: int) -> None:
        pid = procs[index].pid if index in procs else None
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGHUP)

    reloads = _Reloads(log, lambda: {i for i in listening if i in procs}, hangup)
    stopping = False
    status = 0
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)

    def start(index: int) -> None:
        out, into = _fork.Pipe(duplex=False)
        worker = Worker(index, reloads.state, barrier, into)
        proc = _fork.Process(target=_serve_worker, args=(worker, run, os.getpid()), daemon=False)
        proc.start()
        into.close()
        procs[index], lines[index] = proc, out
        reloads.started(index)

    def on_signal(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(wake_w, b"h" if signum == signal.SIGHUP else b"t")

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # else the caller handles them
        previous = {
            s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
    announced = False
    said: set[str] = set()
    first: tuple[str, int, str] = ("", 0, "")

    def hear(index: int, kind: str, data: Any) -> None:
        nonlocal announced, first
        if kind == "say":  # why it could not start: told once, whichever worker says it
            if data not in said:
                said.add(data)
                _say(data)
        elif kind == "reloaded":
            reloads.reloaded(index, *data)
        elif kind == "listening":
            listening.add(index)
            listened.add(index)
            if index == 0:
                first = data
            if index == 0 and not stopping and len(listened) == 1:
                for other in range(1, workers):
                    start(other)
            if not stopping:
                reloads.listens(index)
            if not announced and len(listened) == workers:
                announced = True
                announce(*first)

    def stop() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            on_stop()
        _stop_all(procs.values())

    def drain(index: int) -> None:
        with contextlib.suppress(EOFError, OSError):
            while lines[index].poll():
                hear(index, *lines[index].recv())

    try:
        start(0)  # the others once it listens: a start-up problem is told once, by it
        while procs:
            sentinels: list[Any] = [p.sentinel for p in procs.values()]
            ready = connection.wait([*sentinels, *lines.values(), wake_r], timeout=5.0)
            if wake_r in ready:
                woken = os.read(wake_r, 64)
                if b"t" in woken and not stopping:
                    stop()
                if b"h" in woken and not stopping:  # SIGHUP: every worker reloads
                    reloads.signalled()
            for index, line in list(lines.items()):
                if line in ready:
                    drain(index)
            for index, proc in list(procs.items()):
                if proc.is_alive():
                    continue
                proc.join()
                drain(index)
                lines.pop(index).close()
                del procs[index]
                listening.discard(index)
                barrier.gone(index)
                reloads.died(index)
                code = proc.exitcode
                on_death(index)
                if proc.pid:
                    metrics.worker_exited(proc.pid)  # its open connections stop counting
                if stopping or code == 0:
                    continue
                if index not in listened and not announced:
                    # it never listened: a configuration or start-up problem, said already
                    status = code if code and code > 0 else 1
                    stop()
                    continue
                now = time.monotonic()
                recent = [t for t in deaths[index] if now - t < CRASH_WINDOW] + [now]
                deaths[index] = recent
                how = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
                if len(recent) >= CRASH_LIMIT:
                    log(f"worker {index} died {len(recent)} times in a minute ({how}): stopping")
                    status = 1
                    stop()
                    continue
                log(f"worker {index} died ({how}): restarting it")
                start(index)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stop()
        for proc in procs.values():
            proc.join()
        for fd in (wake_r, wake_w):
            os.close(fd)
        for line in lines.values():
            line.close()
        restore_metrics()
    return status


def _stop_all(procs: Iterable[BaseProcess]) -> None:
    """SIGTERM to every worker; SIGKILL to those still running after STOP_TIMEOUT."""
    alive = [p for p in procs if p.is_alive()]
    for proc in alive:
        with contextlib.suppress(OSError):
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in alive:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
