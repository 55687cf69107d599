"""`milter --workers N`: real worker processes behind one TCP port or one Unix socket.

Both workers take Postfix's connections (seen in /proc: which process holds the accepted
socket), run the checks, reload together on SIGHUP, share the greylist, come back when
killed, and all stop on SIGTERM (a message in flight is answered first) or when the
supervisor itself is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.cli.test_lifecycle import SRC, Process
from tests.cli.test_workers import children, started_by_default, wait_for
from tests.milter.helpers import commands, message
from tests.milter.test_server import play

from mailwarden.cli import run
from mailwarden.cli.common import BoundedInt
from mailwarden.cli.workers import MAX_WORKERS
from mailwarden.milter import MilterClient
from mailwarden.milter import protocol as p

ZONE = """\
$ORIGIN .
$TTL 300
a.example. IN TXT "v=spf1 ip4:192.0.2.10 -all"
"""


def write_config(path: Path, hostname: str, extra: str = "") -> None:
    path.write_text(f'[gateway]\nhostname = "{hostname}"\n[dnsbl]\nuse = []\n{extra}')


def start(tmp_path: Path, listen: str, extra: str = "", workers: int = 2) -> Process:
    """`mailwarden milter --workers N` with the checks signing as one.example."""
    zone = tmp_path / "zone"
    zone.write_text(ZONE)
    config = tmp_path / "mailwarden.toml"
    write_config(config, "one.example", extra)
    return Process(
        "milter", "--config", str(config), "--listen", listen, "--workers", str(workers),
        "--dns-zone", str(zone), "--data-dir", str(tmp_path / "data"), "--json",
    )  # fmt: skip


def held(pid: int, where: str) -> int:
    """How many connections to the milter at `where` process `pid` holds (accepted sockets:
    the TCP ones established on our port, the Unix ones connected and named by our path)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ours = set()
    if where.startswith("unix:"):
        # Num RefCount Protocol Flags Type St Inode Path; St 03: connected
        for row in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = row.split()
            if len(fields) == 8 and fields[7] == where[5:] and fields[5] == "03":
                ours.add(fields[6])
    else:
        port = int(where.rpartition(":")[2])
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = row.split()  # st 01: established
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
                ours.add(fields[9])
    return len(inodes & ours)


class Session:
    """One negotiated milter connection, as Postfix holds it."""

    def __init__(self, client: MilterClient, protocol: p.Protocol) -> None:
        self.client = client
        self.protocol = protocol

    @classmethod
    async def open(cls, where: str) -> Session:
        host, _, port = where.rpartition(":")
        target = (where, 0) if where.startswith("unix:") else (host.strip("[]"), int(port))
        client = await MilterClient.connect(*target)
        try:
            negotiated = await asyncio.wait_for(client.negotiate(), 30)
        except BaseException:
            await client.close()
            raise
        return cls(client, negotiated.protocol)

    async def send(self, raw: bytes, rcpt: str = "bob@b.example") -> list[p.Response]:
        """One message (a new SMTP session on this connection); every response to it."""
        answers = await play(self.client, self.protocol, commands(raw, rcpts=(rcpt,)))
        return [r for _, rs in answers for r in rs]

    async def authserv(self, raw: bytes | None = None) -> str:
        """The authserv-id of the Authentication-Results our milter inserted."""
        responses = await self.send(raw or message())
        inserted = {r.name: r.value for r in responses if isinstance(r, p.InsertHeader)}
        return inserted["Authentication-Results"].split(";")[0].strip()

    async def closed_by_milter(self) -> bool:
        try:
            await asyncio.wait_for(self.client.read(), 30)
        except p.ProtocolError:
            return True
        return False


async def one_per_worker(where: str, pids: list[int], *, keep: bool = True) -> dict[int, Session]:
    """A negotiated connection on each worker: connections are opened until each worker has
    taken one. Those that landed on a worker already served are kept open till the end (so
    the counts only grow), or with `keep` False closed at once, waiting until their worker
    has let go of them (under a connection limit)."""
    found: dict[int, Session] = {}
    spare: list[Session] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < len(pids):
            if time.monotonic() > deadline:
                pytest.fail(f"the connections never reached every worker: {sorted(found)}")
            before = {pid: held(pid, where) for pid in pids}
            session = await Session.open(where)
            risen = [pid for pid in pids if held(pid, where) > before[pid]]
            if len(risen) == 1 and risen[0] not in found:
                found[risen[0]] = session
            elif keep:
                spare.append(session)
            else:
                await session.client.close()
                while any(held(pid, where) > before[pid] for pid in pids):
                    assert time.monotonic() < deadline, "a closed connection is still held"
                    await asyncio.sleep(0.02)
    except BaseException:
        for session in found.values():
            await session.client.close()
        raise
    finally:
        for session in spare:
            await session.client.close()
    return found


@contextlib.asynccontextmanager
async def closing(sessions: dict[int, Session]) -> AsyncIterator[dict[int, Session]]:
    try:
        yield sessions
    finally:
        for session in sessions.values():
            await session.client.close()


def gone(pid: int) -> bool:
    """Ended (reaped, or a zombie awaiting its parent)."""
    with contextlib.suppress(OSError):
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    return True


def test_two_workers_share_a_tcp_port_reload_restart_and_stop(tmp_path: Path) -> None:
    """Both workers take connections and run the checks; SIGHUP gives both the new settings
    (said once); a killed worker comes back with them; SIGTERM: an idle connection on each
    is closed, a message in flight is answered first, then no worker is left, exit 0."""
    process = start(tmp_path, "127.0.0.1:0")
    where = str(process.info["listen"])
    config = tmp_path / "mailwarden.toml"

    async def scenario() -> None:
        assert process.info["workers"] == 2
        assert where.startswith("127.0.0.1:")
        assert not where.endswith(":0")
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        pids = children(process.popen.pid)
        async with closing(await one_per_worker(where, pids)) as sessions:
            assert [await s.authserv() for s in sessions.values()] == ["one.example"] * 2
        write_config(config, "two.example")
        process.signal(signal.SIGHUP)
        process.wait_for("settings reloaded")
        async with closing(await one_per_worker(where, pids)) as sessions:
            assert [await s.authserv() for s in sessions.values()] == ["two.example"] * 2
        os.kill(pids[1], signal.SIGKILL)
        wait_for(
            lambda: (
                len(children(process.popen.pid)) == 2 and pids[1] not in children(process.popen.pid)
            )
        )
        pids = children(process.popen.pid)
        async with closing(await one_per_worker(where, pids)) as sessions:
            # the restarted worker has the reloaded settings, not those of the start
            assert [await s.authserv() for s in sessions.values()] == ["two.example"] * 2
        idle = await one_per_worker(where, pids)
        busy = await one_per_worker(where, pids)
        steps = commands(message())
        for session in busy.values():  # inside a message: MAIL and RCPT answered
            await play(session.client, session.protocol, steps[:6])
        process.signal(signal.SIGTERM)
        for session in idle.values():
            assert await session.closed_by_milter()
        host, _, port = where.rpartition(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5)
        for session in busy.values():
            answers = await play(session.client, session.protocol, steps[6:])
            final = answers[-1][1][-1]
            assert isinstance(final, p.Continue), answers
            assert await session.closed_by_milter()
            await session.client.close()
        for session in idle.values():
            await session.client.close()
        assert process.popen.wait(30) == 0
        assert all(gone(pid) for pid in pids)

    try:
        asyncio.run(scenario())
    finally:
        assert process.stop() == 0
    said = "".join(process.stderr)
    assert said.count("settings reloaded") == 1, said  # once for both workers
    assert said.count("worker 1 died (signal 9): restarting it") == 1, said
    assert "Traceback" not in said, said
    spool = tmp_path / "data" / "milter-spool"
    assert sorted(d.name for d in spool.iterdir()) == ["worker-0", "worker-1"]


def test_two_workers_share_one_unix_socket(tmp_path: Path) -> None:
    """One socket, bound by the supervisor with the single process's mode (0666) and
    inherited: both workers take connections on it, a killed worker does not take it away.
    SIGTERM: the supervisor's copy is closed at once, so while a message in flight is being
    finished a new connection is refused (not left queued for no worker, until Postfix's
    timeout); then the socket is removed and nothing is left."""
    path = tmp_path / "milter.sock"
    process = start(tmp_path, f"unix:{path}")

    async def stop() -> None:
        busy = await Session.open(f"unix:{path}")
        steps = commands(message())
        await play(busy.client, busy.protocol, steps[:6])  # MAIL and RCPT answered
        process.signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:  # refused once every holder of the socket closed it
            try:
                late = await Session.open(f"unix:{path}")
            except (ConnectionError, FileNotFoundError, p.ProtocolError):
                break  # refused, or reset from the backlog of a listener being closed
            await late.client.close()
            assert time.monotonic() < deadline, "still accepting after SIGTERM"
            await asyncio.sleep(0.05)
        answers = await play(busy.client, busy.protocol, steps[6:])
        assert isinstance(answers[-1][1][-1], p.Continue), answers
        await busy.client.close()

    async def scenario() -> list[int]:
        assert process.info == {"listen": f"unix:{path}", "hostname": "one.example", "workers": 2}
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        pids = children(process.popen.pid)
        async with closing(await one_per_worker(f"unix:{path}", pids)) as sessions:
            assert [await s.authserv() for s in sessions.values()] == ["one.example"] * 2
        os.kill(pids[0], signal.SIGKILL)  # the socket stays: the supervisor holds it
        wait_for(lambda: len(children(process.popen.pid)) == 2 and pids[0] not in children(
            process.popen.pid))  # fmt: skip
        pids = children(process.popen.pid)
        async with closing(await one_per_worker(f"unix:{path}", pids)) as sessions:
            assert [await s.authserv() for s in sessions.values()] == ["one.example"] * 2
        return pids

    try:
        pids = asyncio.run(scenario())
        asyncio.run(stop())
        assert process.popen.wait(30) == 0
        assert all(gone(pid) for pid in pids)
        assert not path.exists()
    finally:
        assert process.stop() == 0
    assert "Traceback" not in "".join(process.stderr)


def test_greylisting_holds_across_workers(tmp_path: Path) -> None:
    """A first attempt greylisted by one worker is let through by the other once the delay
    has passed: the workers share one greylist (SQLite in WAL mode in the data directory)."""
    extra = "[greylist]\nmin_delay = 1\n[policy.thresholds]\ngreylist = 0\n"
    process = start(tmp_path, "127.0.0.1:0", extra)
    where = str(process.info["listen"])

    async def scenario() -> None:
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        pids = children(process.popen.pid)
        async with closing(await one_per_worker(where, pids)) as sessions:
            first, second = sessions.values()
            answer = (await first.send(message()))[-1]
            assert isinstance(answer, p.ReplyCode), answer
            assert answer.text.startswith("451 "), answer
            assert "Greylisted" in answer.text, answer
            await asyncio.sleep(1.5)
            assert isinstance((await second.send(message()))[-1], p.Continue)

    try:
        asyncio.run(scenario())
    finally:
        assert process.stop() == 0


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the supervisor: each worker gets SIGTERM from the kernel and stops (its
    idle connection closed) instead of living on with the port."""
    process = start(tmp_path, "127.0.0.1:0")
    where = str(process.info["listen"])
    pids: list[int] = []

    async def scenario() -> None:
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        pids.extend(children(process.popen.pid))
        idle = await one_per_worker(where, pids)
        process.signal(signal.SIGKILL)
        for session in idle.values():
            assert await session.closed_by_milter()
            await session.client.close()
        wait_for(lambda: all(gone(pid) for pid in pids))
        host, _, port = where.rpartition(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5)

    try:
        asyncio.run(scenario())
    finally:
        for pid in pids:  # left behind on failure: they would hold the test's pipes
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert process.stop() == -signal.SIGKILL
    assert "Traceback" not in "".join(process.stderr)


def accepted(value: str) -> bool:
    """Whether --workers takes `value` (then the milter would start)."""
    try:
        BoundedInt(1, MAX_WORKERS).convert(value, None, None)
    except click.BadParameter:
        return False
    return True


@pytest.mark.parametrize("bad", ["0", "-1", "65", "x", "", "1.5", "٣", "1e3", "nan"])
def test_bad_workers_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: str
) -> None:
    code = run(["milter", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), "--workers", bad])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("mailwarden: error: Invalid value for '--workers': "), err


ARGV_TEXT = st.text(st.characters(exclude_characters="\x00"))  # argv holds no NUL


@given(st.one_of(st.integers().map(str), ARGV_TEXT).filter(lambda v: not accepted(v)))
def test_any_refused_workers_value_is_one_line_exit_2(value: str) -> None:
    """Whatever --workers is given that it does not take: one line naming it, exit 2."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run(["milter", "--listen", "127.0.0.1:0", "--workers", value])
    assert code == 2
    assert err.getvalue().count("\n") == 1, err.getvalue()
    assert "Invalid value for '--workers'" in err.getvalue(), err.getvalue()


def milter_by_default(tmp_path: Path, cpus: set[int] | None) -> tuple[dict[str, object], int]:
    """`milter` without --workers on `cpus` (None: as this process may): its announcement and
    how many worker processes it has."""
    tmp_path.mkdir()
    zone = tmp_path / "zone"
    zone.write_text(ZONE)
    args = ["milter", "--listen", "127.0.0.1:0", "--dns-zone", str(zone),
            "--data-dir", str(tmp_path / "data")]  # fmt: skip
    return started_by_default(args, cpus, env={**os.environ, "PYTHONPATH": str(SRC)})


def test_milter_runs_one_worker_per_cpu_by_default(tmp_path: Path) -> None:
    """As `serve`: a worker per CPU; on one CPU (taskset, a container) one process as before."""
    cpus = len(os.sched_getaffinity(0))
    info, forked = milter_by_default(tmp_path / "all", None)
    if cpus > 1:
        assert (info["workers"], forked) == (cpus, cpus)
    else:
        assert ("workers" not in info, forked) == (True, 0)
    info, forked = milter_by_default(tmp_path / "one", {min(os.sched_getaffinity(0))})
    assert "workers" not in info
    assert forked == 0


def test_max_connections_holds_across_workers(tmp_path: Path) -> None:
    """`[milter] max_connections = 2` is 2 in all, not 2 per worker: with one connection held
    on each worker, a third is closed at once whichever worker takes it."""
    process = start(tmp_path, "127.0.0.1:0", "[milter]\nmax_connections = 2\n")
    where = str(process.info["listen"])

    async def scenario() -> None:
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        pids = children(process.popen.pid)
        async with closing(await one_per_worker(where, pids, keep=False)):
            for _ in range(6):  # closed at once (reset when our negotiation was unread)
                with pytest.raises((p.ProtocolError, ConnectionResetError)):
                    await Session.open(where)
        deadline = time.monotonic() + 10
        while True:  # released once they closed
            with contextlib.suppress(p.ProtocolError, ConnectionResetError):
                await (await Session.open(where)).client.close()
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    try:
        asyncio.run(scenario())
    finally:
        assert process.stop() == 0
