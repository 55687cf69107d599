"""`check --batch --workers N` and `serve --workers N`: real worker processes.

Batches give the same lines in the same order as one process, bad lines included, and a
worker that dies turns only its own unanswered lines into internal errors. The gateway's
workers listen on one port, hold the connection limits together, are restarted when they
die, and all stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import json
import os
import random
import re
import select
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.cli.test_lifecycle import SMTP, Process, delivered, hostport, write_serve_config
from tests.cli.test_lifecycle import ZONE as SPF_ZONE
from tests.dkim.helpers import ed_key

from mailwarden.cli import run
from mailwarden.cli.workers import (
    SHARD_SLACK,
    Shards,
    StopBarrier,
    _Reloads,
    read_chunks,
    run_batch_workers,
    sender_domain,
)
from mailwarden.dkim import key_record, sign

ZONE = """\
$ORIGIN .
$TTL 300
a.example. IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc.a.example. IN TXT "v=DMARC1; p=reject"
"""
MESSAGE = (
    b"From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: hi\r\n"
    b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@a.example>\r\n\r\nHello.\r\n"
)


def mailwarden(
    *args: str, stdin: bytes = b"", timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailwarden", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest of good and bad lines, and the zone the messages are checked against."""
    key = ed_key()
    zone = tmp_path / "zone"
    zone.write_text(ZONE + f'sel._domainkey.a.example. IN TXT "{key_record(key)}"\n')
    lines: list[bytes] = []
    for i in range(24):
        body = MESSAGE.replace(b"Hello.", f"Hello {i}.".encode())
        (tmp_path / f"m{i}.eml").write_bytes(sign(body, "a.example", "sel", key) + body)
        ip = "192.0.2.7" if i % 3 else "203.0.113.9"
        item = {"file": f"m{i}.eml", "ip": ip, "helo": "h.a.example", "mail_from": "x@a.example"}
        lines.append(json.dumps(item).encode())
    lines[5] = b"not json"
    lines[9] = b'{"file": "missing.eml", "ip": "192.0.2.7", "helo": "h.a.example"}'
    lines[14] = b"\xff\xfe"
    lines[17] = b""
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest, zone


def batch_output(manifest: Path, zone: Path, workers: int) -> tuple[int, list[dict[str, Any]]]:
    result = mailwarden(
        "check", "--batch", str(manifest), "--json", "--workers", str(workers),
        "--dns-zone", str(zone), "--no-network-checks",
    )  # fmt: skip
    assert b"Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    for line in lines:
        line.pop("elapsed", None)
    return result.returncode, lines


def test_batch_workers_match_one_process_line_for_line(batch: tuple[Path, Path]) -> None:
    one_code, one = batch_output(*batch, workers=1)
    three_code, three = batch_output(*batch, workers=3)
    assert one_code == three_code == 1  # bad lines: exit 1, the batch went on
    assert len(three) == 24
    assert three == one
    assert [line.get("file") for line in three[:3]] == ["m0.eml", "m1.eml", "m2.eml"]
    assert [line["line"] for line in three if "error" in line] == [6, 10, 15, 18]
    assert three[0]["spf"]["result"] == "fail"
    assert three[1]["dmarc"]["result"] == "pass"


def test_batch_more_workers_than_lines_and_empty_input(batch: tuple[Path, Path]) -> None:
    manifest, zone = batch
    first = manifest.read_bytes().split(b"\n")[0] + b"\n"
    short = manifest.parent / "short.jsonl"
    short.write_bytes(first)
    code, lines = batch_output(short, zone, workers=5)
    assert code == 0
    assert [line["file"] for line in lines] == ["m0.eml"]
    empty = manifest.parent / "empty.jsonl"
    empty.write_bytes(b"")
    assert batch_output(empty, zone, workers=4) == (0, [])


def test_workers_without_batch_is_exit_2(
    batch: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, zone = batch
    code = run(
        ["check", str(manifest.parent / "m0.eml"), "--ip", "192.0.2.7", "--helo", "h.a.example",
         "--workers", "2", "--dns-zone", str(zone)]
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
    for bad in ("0", "65", "x", "٣", "-1", "1e3"):
        code = run(["check", "--batch", str(manifest), "--json", "--workers", bad])
        assert code == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err


def test_a_dying_worker_costs_only_its_own_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Worker 1 of 2 dies on line 4: its later lines (4, 6, 8) are internal errors, worker
    0's lines (odd) all come back, in order; exit 70."""
    stream = tmp_path / "lines"
    stream.write_bytes(b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(1, 9)))

    def make_evaluate() -> Any:
        async def evaluate(number: int, item: dict[str, Any]) -> dict[str, Any]:
            if number == 4:
                os._exit(9)
            return {"n": item["n"]}

        return evaluate

    with stream.open("rb") as lines:
        code = run_batch_workers(lines, make_evaluate, workers=2, concurrency=1)
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 70
    assert out[:3] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert [o.get("n") for o in out[4::2]] == [5, 7]
    for number in (4, 6, 8):
        assert out[number - 1]["line"] == number
        assert "worker process died" in out[number - 1]["error"]


def pid_per_line(stream: Path, workers: int, shard_key: Any) -> list[dict[str, Any]]:
    """Each line's worker (its process id) and the line's own fields, through run_batch_workers."""

    def make_evaluate() -> Any:
        async def evaluate(number: int, item: dict[str, Any]) -> dict[str, Any]:
            return {**item, "pid": os.getpid()}

        return evaluate

    read, write = os.pipe()
    with stream.open("rb") as lines, contextlib.redirect_stdout(os.fdopen(write, "w")) as out:
        code = run_batch_workers(lines, make_evaluate, workers=workers, concurrency=4,
                                 shard_key=shard_key)  # fmt: skip
        out.close()
    with os.fdopen(read) as answers:
        found = [json.loads(line) for line in answers]
    assert code == 0
    return found


def test_workers_end_with_the_batch_at_once() -> None:
    """Every worker is told the lines are over before the command closes its pipes (a worker
    not told waited for its end of the pipe, which its sibling held open: 5 s, then killed)."""

    def make_evaluate() -> Any:
        async def evaluate(number: int, item: dict[str, Any]) -> dict[str, Any]:
            return item

        return evaluate

    for lines in [b""] * 15 + [b'{"n": 1}\n'] * 15:
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):
            assert (
                run_batch_workers(io.BytesIO(lines), make_evaluate, workers=3, concurrency=2) == 0
            )
        assert time.monotonic() - started < 2.5


def test_lines_of_one_sender_domain_go_to_one_worker(tmp_path: Path) -> None:
    """40 domains, 10 lines each, shuffled: every domain's lines are checked by one worker (its
    cache answers them), the workers share the lines evenly, the output keeps the input order."""
    rng = random.Random(7)
    domains = [f"d{d}.example" for d in range(40)]
    items = [{"mail_from": f"u{i}@{rng.choice(domains).upper()}.", "n": i} for i in range(400)]
    stream = tmp_path / "lines"
    stream.write_bytes(b"".join(json.dumps(item).encode() + b"\n" for item in items))
    found = pid_per_line(stream, 2, sender_domain)
    assert [line["n"] for line in found] == list(range(400))
    workers_of: dict[str, set[int]] = {}
    for line in found:
        domain = line["mail_from"].rpartition("@")[2].rstrip(".").lower()
        workers_of.setdefault(domain, set()).add(line["pid"])
    assert all(len(pids) == 1 for pids in workers_of.values())
    per_worker = collections.Counter(line["pid"] for line in found)
    assert len(per_worker) == 2
    assert max(per_worker.values()) - min(per_worker.values()) <= 2 * SHARD_SLACK


def test_one_domain_sending_everything_still_uses_every_worker(tmp_path: Path) -> None:
    stream = tmp_path / "lines"
    stream.write_bytes(b"".join(b'{"mail_from": "a@one.example"}\n' for _ in range(300)))
    per_worker = collections.Counter(line["pid"] for line in pid_per_line(stream, 3, sender_domain))
    assert len(per_worker) == 3
    assert max(per_worker.values()) - min(per_worker.values()) <= SHARD_SLACK + 1


@pytest.mark.parametrize(
    ("line", "domain"),
    [
        (b'{"mail_from": "a@B.Example.", "helo": "h.c.example"}', "b.example"),
        (b'{"mail_from": "", "helo": "H.C.example"}', "h.c.example"),
        (b'{"mail_from": "<a@b.example>"}', "b.example"),
        (b'{"mail_from": "postmaster"}', "postmaster"),
        (b'{"mail_from": "", "helo": ""}', None),
        (b'{"mail_from": ["a@b.example"], "helo": 7}', None),
        (b"[1, 2]", None),
        (b"not json", None),
        (b"\xff\xfe", None),
        (b'{"mail_from": "a@\\udcff.example"}', "\udcff.example"),
    ],
)
def test_sender_domain_of_a_line(line: bytes, domain: str | None) -> None:
    assert sender_domain(line) == domain


def test_shards_without_a_key_go_round_robin() -> None:
    shards = Shards(3, None)
    assert [shards.worker(b"x") for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    crc = Shards(2, lambda raw: raw.decode() or None)
    assert len({crc.worker(b"same") for _ in range(SHARD_SLACK)}) == 1


class Trickle(io.RawIOBase):
    """A stream giving at most `sizes[i]` bytes per read, as a pipe written slowly does."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes = data, sizes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), len(self.data), self.sizes.pop() if self.sizes else len(buffer))
        buffer[:size] = self.data[:size]
        self.data = self.data[size:]
        return size


@given(
    st.lists(st.sampled_from([b"a", b"\n", b"\r", b"{}"]), max_size=60).map(b"".join),
    st.lists(st.integers(1, 9), max_size=30),
)
def test_chunks_hold_the_lines_of_the_stream(data: bytes, sizes: list[int]) -> None:
    """Whatever pieces the stream comes in, the chunks hold its lines, as iterating it does."""
    chunks = list(read_chunks(io.BufferedReader(Trickle(data, list(sizes)))))
    assert all(chunks)
    assert [line for chunk in chunks for line in chunk] == list(io.BytesIO(data))


def test_a_line_over_many_reads_is_joined_once() -> None:
    """A 32 MiB line (a manifest gone wrong) comes in 512 reads: its pieces are joined once,
    not the line so far copied again at every read (quadratic: seconds, not milliseconds)."""
    line = b"x" * (32 << 20)
    started = time.monotonic()
    chunks = list(read_chunks(io.BufferedReader(io.BytesIO(line + b"\nend"))))
    assert time.monotonic() - started < 2.0
    assert chunks == [[line + b"\n"], [b"end"]]


def test_lines_written_slowly_are_answered_as_they_come(batch: tuple[Path, Path]) -> None:
    """A pipe fed one line at a time: each answer is written (and flushed, whatever the
    buffering of standard output) before the next line is sent."""
    manifest, zone = batch
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    first, second = manifest.read_bytes().split(b"\n")[:2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", "check", "--batch", "-", "--json", "--workers", "2",
         "--dns-zone", str(zone), "--no-network-checks"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=manifest.parent,
        env=env,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        for line, file in ((first, "m0.eml"), (second, "m1.eml")):
            proc.stdin.write(line + b"\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, f"no answer to the line for {file}"
            assert json.loads(proc.stdout.readline())["file"] == file
        proc.stdin.close()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        close_pipes(proc)  # type: ignore[arg-type]


# -- the gateway -----------------------------------------------------------------------------


def close_pipes(proc: subprocess.Popen[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return sorted(found)


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.1)


@contextmanager
def gateway(
    tmp_path: Path, workers: int, limits: str = ""
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        f'[gateway]\nlisten = "127.0.0.1:0"\nhostname = "mx.test"\ngreet_pause = 0\n'
        f'data_dir = "{tmp_path}/data"\n'
        f'local_domains = ["b.example"]\n[gateway.limits]\n{limits}\n'
        "[dnsbl]\nuse = []\n"
    )
    zone = tmp_path / "zone"
    zone.write_text(ZONE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", "serve", "--config", str(config),
         "--workers", str(workers), "--dns-zone", str(zone), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            assert proc.stderr is not None
            pytest.fail(f"did not start: {proc.stderr.read()}")
        info = json.loads(line)
        assert info["workers"] == workers
        yield proc, int(info["listen"].rsplit(":", 1)[1])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        close_pipes(proc)


def greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return sock.recv(512)


def test_serve_workers_share_the_port_restart_and_stop(tmp_path: Path) -> None:
    with gateway(tmp_path, workers=2) as (proc, port):
        wait_for(lambda: len(children(proc.pid)) == 2)
        workers = children(proc.pid)
        for _ in range(8):
            assert greeting(port).startswith(b"220 ")
        for _ in range(4):  # every worker runs the checks: an unsigned a.example is refused
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("h.a.example")
                with pytest.raises(smtplib.SMTPDataError) as refused:
                    client.sendmail("x@a.example", ["bob@b.example"], MESSAGE)
                assert refused.value.smtp_code == 550
                assert b"DMARC" in refused.value.smtp_error
        os.kill(workers[1], signal.SIGKILL)
        wait_for(lambda: len(children(proc.pid)) == 2 and workers[1] not in children(proc.pid))
        for _ in range(8):  # the port still answers, whichever worker takes the connection
            assert greeting(port).startswith(b"220 ")
        replaced = children(proc.pid)
        proc.send_signal(signal.SIGHUP)  # passed on: every worker reloads, none dies
        time.sleep(1.0)
        assert children(proc.pid) == replaced
        for _ in range(4):
            assert greeting(port).startswith(b"220 ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert err.count("died") == 1, err
        assert "worker 1 died (signal 9): restarting it" in err
        assert "Traceback" not in err
        for pid in replaced:  # no worker outlives the supervisor
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
    assert sorted((tmp_path / "data" / "spool").iterdir()) == [
        tmp_path / "data" / "spool" / "worker-0",
        tmp_path / "data" / "spool" / "worker-1",
    ]


def test_connection_limits_hold_across_workers(tmp_path: Path) -> None:
    """Per client 3 in all, not 3 per worker: with SO_REUSEPORT the connections spread over
    both workers, and the fourth is refused whichever worker takes it."""
    with gateway(tmp_path, workers=2, limits="max_connections_per_client = 3") as (proc, port):
        wait_for(lambda: len(children(proc.pid)) == 2)
        held = []
        try:
            for _ in range(3):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                held.append(sock)
                assert sock.recv(512).startswith(b"220 ")
            for _ in range(6):
                assert greeting(port).startswith(b"421 ")
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: greeting(port).startswith(b"220 "))  # released when they closed


def test_total_connection_limit_holds_across_workers(tmp_path: Path) -> None:
    with gateway(tmp_path, workers=2, limits="max_connections = 2") as (proc, port):
        wait_for(lambda: len(children(proc.pid)) == 2)
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            assert all(sock.recv(512).startswith(b"220 ") for sock in held)
            for _ in range(6):
                assert b"too many connections" in greeting(port)
        finally:
            for sock in held:
                sock.close()


def test_a_worker_that_cannot_start_is_one_error_line(tmp_path: Path) -> None:
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        f'[gateway]\nlisten = "127.0.0.1:0"\nhostname = "mx.test"\ndata_dir = "{tmp_path}/d"\n'
        f'[forwarding]\naliases = "{tmp_path}/missing-aliases"\n'
    )
    result = mailwarden(
        "serve", "--config", str(config), "--workers", "3", "--dns-zone", "/dev/null"
    )
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.count("mailwarden: error:") == 1, err
    assert "Traceback" not in err


def serve_files(tmp_path: Path) -> tuple[Path, Path]:
    """The zone (a.example: SPF, no DMARC, so the messages are delivered) and a serve
    configuration naming mx1.test."""
    zone = tmp_path / "zone"
    zone.write_text(SPF_ZONE)
    config = tmp_path / "mailwarden.toml"
    write_serve_config(config, "mx1.test")
    return zone, config


def serve_two_workers(zone: Path, config: Path) -> Process:
    return Process(
        "serve", "--config", str(config), "--listen", "127.0.0.1:0", "--workers", "2",
        "--dns-zone", str(zone), "--json",
    )  # fmt: skip


def started_by_default(
    args: list[str], cpus: set[int] | None, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], int]:
    """`mailwarden ARGS --json` (a server, without --workers) on `cpus` (None: as this
    process may): its announcement and how many worker processes it has; stopped after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", *args, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        count = int(info.get("workers", 1))
        if count > 1:
            wait_for(lambda: len(children(proc.pid)) == count)
        forked = len(children(proc.pid))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
        return info, forked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        close_pipes(proc)


def serve_by_default(tmp_path: Path, cpus: set[int] | None) -> tuple[dict[str, Any], int]:
    """`serve` without --workers on `cpus`: its announcement and its worker processes."""
    tmp_path.mkdir()
    zone, config = serve_files(tmp_path)
    args = ["serve", "--config", str(config), "--listen", "127.0.0.1:0", "--dns-zone", str(zone)]
    return started_by_default(args, cpus)


def test_serve_runs_one_worker_per_cpu_by_default(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    info, forked = serve_by_default(tmp_path / "all", None)
    if cpus > 1:
        assert (info["workers"], forked) == (cpus, cpus)
    else:
        assert ("workers" not in info, forked) == (True, 0)
    # on one CPU (its affinity, as taskset or a container would set it): one process, as before
    info, forked = serve_by_default(tmp_path / "one", {min(os.sched_getaffinity(0))})
    assert "workers" not in info
    assert forked == 0


# -- reload and orderly stop in every worker (real sockets, real signals) --------------------


def serving_pid(sock: socket.socket, pids: list[int]) -> int | None:
    """Which of `pids` holds the server side of the connection `sock` (after its greeting,
    so accepted): found in /proc/net/tcp by the port pair, then among the workers' fds."""
    server_port, client_port = sock.getpeername()[1], sock.getsockname()[1]
    inode = None
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            inode = fields[9]
    if inode is None or inode == "0":
        return None
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def one_per_worker(address: tuple[str, int], pids: list[int]) -> dict[int, SMTP]:
    """An SMTP session (greeted, EHLO said) on each worker: connections are opened until the
    kernel has given one to each, 30 s at most (the others are closed)."""
    sessions: dict[int, SMTP] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        client = SMTP(address)
        pid = serving_pid(client.sock, pids)
        if pid is None or pid in sessions:
            client.close()
            continue
        assert client.command("EHLO mail.a.example").startswith("250")
        sessions[pid] = client
        if len(sessions) == len(pids):
            return sessions
    pytest.fail(f"the connections never reached every worker: {sorted(sessions)} of {pids}")


def send(client: SMTP, subject: str) -> None:
    """One message to postmaster@example.net, the session then closed."""
    message = f"From: a@a.example\r\nTo: postmaster@example.net\r\nSubject: {subject}\r\n\r\nhi"
    assert client.command("MAIL FROM:<x@a.example>").startswith("250")
    assert client.command("RCPT TO:<postmaster@example.net>").startswith("250")
    assert client.command("DATA").startswith("354")
    assert client.command(message + "\r\n.").startswith("250")
    assert client.command("QUIT").startswith("221")
    client.close()


def stamped(root: Path) -> dict[str, str]:
    """Subject -> the authserv-id of our Authentication-Results, for every delivered message."""
    found = {}
    for mail in delivered(root):
        head = mail.split(b"\r\n\r\n")[0].decode()
        subject = re.search(r"^Subject: (.*)$", head, re.M)
        stamp = re.search(r"^Authentication-Results: ([^;]+);", head, re.M)
        assert subject, head
        assert stamp, head
        found[subject.group(1)] = stamp.group(1)
    return found


def test_every_worker_reloads_and_stops_in_order(tmp_path: Path) -> None:
    """`serve --workers 2`: SIGHUP gives new connections on each worker the new settings (one
    line said, once both reloaded) while sessions opened before finish on the old ones; an
    unusable file is said once and both keep running; a worker restarted after the reload
    gets the reloaded settings, not the first ones; SIGTERM: the idle sessions of both workers
    get 421 4.3.2, then no worker accepts, the transactions in flight finish, exit 0."""
    zone, config = serve_files(tmp_path)
    process = serve_two_workers(zone, config)
    address = hostport(process.info["listen"])
    try:
        assert process.info["workers"] == 2
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        pids = children(process.popen.pid)
        early = one_per_worker(address, pids)  # open across the reload: the old settings
        write_serve_config(config, "mx2.test")
        process.signal(signal.SIGHUP)
        process.wait_for("settings reloaded")
        for pid, client in one_per_worker(address, pids).items():
            send(client, f"new {pids.index(pid)}")
        for pid, client in early.items():
            send(client, f"early {pids.index(pid)}")
        config.write_text('[dnsbl]\nuse = ["nosuchlist"]\n')
        process.signal(signal.SIGHUP)
        process.wait_for("reload failed")
        for pid, client in one_per_worker(address, pids).items():
            send(client, f"kept {pids.index(pid)}")
        said = "".join(process.stderr)
        assert said.count("settings reloaded") == 1, said  # said once for both workers
        assert said.count("reload failed") == 1, said
        assert "nosuchlist" in said
        # a worker that dies after the reload comes back with the reloaded settings
        os.kill(pids[1], signal.SIGKILL)
        wait_for(
            lambda: (
                len(children(process.popen.pid)) == 2 and pids[1] not in children(process.popen.pid)
            )
        )
        pids = children(process.popen.pid)
        restarted = next(pid for pid in pids if pid not in early)
        sessions = one_per_worker(address, pids)  # once it listens
        send(sessions.pop(restarted), "restarted")
        for client in sessions.values():
            client.close()
        # the orderly stop: on each worker an idle session and one in a transaction
        idle = one_per_worker(address, pids)
        busy = one_per_worker(address, pids)
        for client in busy.values():
            assert client.command("MAIL FROM:<x@a.example>").startswith("250")
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        for client in idle.values():
            assert client.reply().startswith("421 4.3.2 mx1.test Service shutting down")
            client.close()
        with pytest.raises(ConnectionRefusedError):  # told 421: no worker accepts any more
            socket.create_connection(address, timeout=5)
        for index, client in enumerate(busy.values()):
            assert client.command("RCPT TO:<postmaster@example.net>").startswith("250")
            assert client.command("DATA").startswith("354")
            message = f"From: a@a.example\r\nTo: postmaster@example.net\r\nSubject: stop {index}"
            assert client.command(message + "\r\n\r\nhi\r\n.").startswith("250")
            assert client.reply().startswith("421 4.3.2 ")  # RFC 5321 §3.8
            client.close()
        assert process.popen.wait(30) == 0
        assert time.monotonic() - started < 30
        for pid in pids:  # no worker outlives the supervisor
            assert not Path(f"/proc/{pid}").exists()
    finally:
        assert process.stop() == 0
    assert stamped(tmp_path) == {
        "early 0": "mx1.test",
        "early 1": "mx1.test",
        "new 0": "mx2.test",
        "new 1": "mx2.test",
        "kept 0": "mx2.test",
        "kept 1": "mx2.test",
        "restarted": "mx2.test",
        "stop 0": "mx2.test",
        "stop 1": "mx2.test",
    }
    assert "worker 1 died (signal 9): restarting it" in "".join(process.stderr)
    assert not any("Traceback" in line for line in process.stderr)


@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c", "sigint"])
def test_sigint_stops_every_worker(tmp_path: Path, group: bool) -> None:
    """Ctrl-C in a terminal signals the whole process group (the supervisor and each worker
    at once); `kill -INT` only the supervisor. Either way: the idle session is told 421, no
    worker is left, exit 0, no worker reported dead."""
    zone, config = serve_files(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", "serve", "--config", str(config),
         "--listen", "127.0.0.1:0", "--workers", "2", "--dns-zone", str(zone), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        wait_for(lambda: len(children(proc.pid)) == 2)
        workers = children(proc.pid)
        idle = one_per_worker(hostport(json.loads(line)["listen"]), workers)
        if group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        for client in idle.values():
            assert client.reply().startswith("421 4.3.2 mx1.test Service shutting down")
            client.close()
        assert proc.wait(40) == 0
        err = proc.stderr.read()
        assert "died" not in err, err
        assert "Traceback" not in err, err
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        close_pipes(proc)


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the supervisor (the OOM killer, `kill -9`): its workers do not live on with
    the port; each gets SIGTERM and stops in order (its idle session told 421)."""
    zone, config = serve_files(tmp_path)
    process = serve_two_workers(zone, config)
    address = hostport(process.info["listen"])
    workers: list[int] = []
    try:
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        workers = children(process.popen.pid)
        idle = one_per_worker(address, workers)
        process.signal(signal.SIGKILL)
        for client in idle.values():
            assert client.reply().startswith("421 4.3.2 mx1.test Service shutting down")
            client.close()

        def gone(pid: int) -> bool:  # ended (reaped by init, or a zombie awaiting it)
            status = Path(f"/proc/{pid}/status")
            with contextlib.suppress(OSError):
                return "zombie" in status.read_text()
            return True

        wait_for(lambda: all(gone(pid) for pid in workers))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5)
    finally:
        for pid in workers:  # left behind on failure: they would hold the test's pipes
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert process.stop() == -signal.SIGKILL
    assert not any("Traceback" in line for line in process.stderr)


# -- the supervisor's reload rounds and the stop barrier, as pure logic ----------------------


class Rounds:
    """`_Reloads` with workers 0 and 1 listening, recording what it says and whom it signals."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.hung_up: list[int] = []
        self.listening = {0, 1}
        self.reloads = _Reloads(self.said.append, lambda: set(self.listening), self.hung_up.append)
        for index in (0, 1):
            self.reloads.started(index)
            self.reloads.listens(index)


OK = "settings reloaded: new connections use them"
KEPT = "warning: reload failed, the running configuration is kept: bad"


def test_a_round_is_said_once_when_every_worker_answered() -> None:
    rounds = Rounds()
    assert rounds.hung_up == []  # listening with the settings of the start: nothing to do
    rounds.reloads.signalled()
    assert sorted(rounds.hung_up) == [0, 1]
    rounds.reloads.reloaded(0, OK, "new")
    assert rounds.said == []  # worker 1 has not reloaded yet
    rounds.reloads.reloaded(1, OK, "new")
    assert rounds.said == [OK]
    assert rounds.reloads.state == "new"


def test_outcomes_that_differ_name_their_workers() -> None:
    rounds = Rounds()
    rounds.reloads.signalled()
    rounds.reloads.reloaded(1, KEPT, None)
    rounds.reloads.reloaded(0, OK, "new")
    assert rounds.said == [f"worker 0: {OK}", f"worker 1: {KEPT}"]


def test_a_sighup_during_a_round_starts_another_after_it() -> None:
    rounds = Rounds()
    rounds.reloads.signalled()
    rounds.reloads.signalled()  # not passed on yet: worker 0 would reload twice at once
    assert sorted(rounds.hung_up) == [0, 1]
    rounds.reloads.reloaded(0, OK, "one")
    rounds.reloads.reloaded(1, OK, "one")
    assert sorted(rounds.hung_up) == [0, 0, 1, 1]
    rounds.reloads.reloaded(0, KEPT, None)
    rounds.reloads.reloaded(1, KEPT, None)
    assert rounds.said == [OK, KEPT]
    assert rounds.reloads.state == "one"  # the failed round keeps the running settings


def test_a_worker_dying_in_a_round_does_not_hold_it() -> None:
    rounds = Rounds()
    rounds.reloads.signalled()
    rounds.reloads.reloaded(0, OK, "new")
    rounds.listening.discard(1)
    rounds.reloads.died(1)
    assert rounds.said == [OK]
    rounds.reloads.started(1)  # restarted with the reloaded settings: no reload of its own
    rounds.listening.add(1)
    rounds.reloads.listens(1)
    assert sorted(rounds.hung_up) == [0, 1]


def test_a_worker_that_missed_a_round_reloads_alone() -> None:
    rounds = Rounds()
    rounds.listening.discard(1)
    rounds.reloads.died(1)
    rounds.reloads.started(1)  # starting, not listening yet
    rounds.reloads.signalled()
    assert rounds.hung_up == [0]
    rounds.reloads.reloaded(0, OK, "new")
    assert rounds.said == [OK]  # the round was worker 0's alone
    # it ended before worker 1 listened: worker 1 reloads alone, said only if it fails
    rounds.listening.add(1)
    rounds.reloads.listens(1)
    assert rounds.hung_up == [0, 1]
    rounds.reloads.reloaded(1, KEPT, None)
    assert rounds.said == [OK, f"worker 1: {KEPT}"]


def test_a_late_worker_inside_an_open_round_counts_in_it() -> None:
    rounds = Rounds()
    rounds.listening.discard(1)
    rounds.reloads.died(1)
    rounds.reloads.started(1)
    rounds.reloads.signalled()
    rounds.listening.add(1)
    rounds.reloads.listens(1)  # while worker 0 is still reloading
    rounds.reloads.reloaded(0, OK, "new")
    assert rounds.said == []
    rounds.reloads.reloaded(1, OK, "new")
    assert rounds.said == [OK]


def test_a_round_nobody_answered_is_caught_up_by_the_next_worker() -> None:
    """Every worker died during the round: those started after it reload once they listen,
    silently when it works, and hand the settings over."""
    rounds = Rounds()
    rounds.reloads.signalled()
    for index in (0, 1):
        rounds.listening.discard(index)
        rounds.reloads.died(index)
    assert rounds.said == []
    rounds.reloads.started(0)
    rounds.listening.add(0)
    rounds.reloads.listens(0)
    assert rounds.hung_up == [0, 1, 0]
    rounds.reloads.reloaded(0, OK, "new")
    assert rounds.said == []
    assert rounds.reloads.state == "new"


def test_a_reload_nobody_asked_for_is_said_with_its_worker() -> None:
    rounds = Rounds()
    rounds.reloads.reloaded(1, OK, "new")  # SIGHUP sent to worker 1 itself
    assert rounds.said == [f"worker 1: {OK}"]


def test_the_stop_barrier_waits_for_every_listening_worker() -> None:
    async def scenario() -> None:
        barrier = StopBarrier(3, timeout=0.3)
        for index in (0, 1):
            barrier.listening(index)  # worker 2 never listened: not waited for
        assert not await barrier.closed(0)  # worker 1 still listens: given up after 0.3 s
        later = asyncio.get_running_loop().call_later(0.05, barrier.gone, 1)  # it dies
        assert await barrier.closed(0)
        later.cancel()
        barrier.listening(1)  # restarted
        waiting = asyncio.ensure_future(barrier.closed(0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await barrier.closed(1)
        assert await waiting

    asyncio.run(scenario())
