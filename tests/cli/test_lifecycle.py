"""Real processes, real signals: SIGHUP reloads the settings without dropping a connection (a
bad configuration is logged and the running one kept); SIGTERM lets the transactions in
flight finish, refuses new connections, and exits 0. For `mailwarden policy` and `serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ZONE = """\
$ORIGIN .
$TTL 300
a.example. IN TXT "v=spf1 ip4:192.0.2.10 -all"
"""
POLICY_CONFIG = """\
[gateway]
hostname = "{hostname}"
data_dir = "{data}"
[dnsbl]
use = []
[policy_service]
greylist = "off"
spf = "{spf}"
"""
REQUEST = (
    b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=198.51.100.7\n"
    b"helo_name=mail.a.example\nsender=x@%s\nrecipient=bob@b.example\ninstance=%s\n\n"
)


class Process:
    """A mailwarden command in its own process; its stderr collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "mailwarden", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        if not line:
            self.popen.wait(10)
            raise RuntimeError(f"did not start: {''.join(self.stderr)}")
        self.info = json.loads(line)

    def _collect(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr.append(line)

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stderr:
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never logged: {''.join(self.stderr)}")

    def stop(self) -> int:
        """SIGTERM (unless it already ended), its exit status; the pipes closed."""
        if self.popen.poll() is None:
            self.popen.terminate()
        code = self.popen.wait(30)
        self._reader.join(10)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()
        return code


def hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def ask(sock: socket.socket, sender: str, instance: str) -> str:
    sock.sendall(REQUEST % (sender.encode(), instance.encode()))
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = sock.recv(4096)
        assert chunk, f"closed; got {data!r}"
        data += chunk
    return data.decode().removeprefix("action=").strip()


def write_policy_config(path: Path, spf: str, hostname: str = "mx.b.example") -> None:
    path.write_text(POLICY_CONFIG.format(hostname=hostname, data=path.parent / "data", spf=spf))


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "test.zone"
    path.write_text(ZONE)
    return path


def test_policy_sighup_reloads_without_dropping_the_connection(tmp_path: Path, zone: Path) -> None:
    config = tmp_path / "mailwarden.toml"
    write_policy_config(config, "prepend")
    process = Process(
        "policy", "--config", str(config), "--listen", "127.0.0.1:0",
        "--dns-zone", str(zone), "--json",
    )  # fmt: skip
    try:
        with socket.create_connection(hostport(process.info["listen"]), timeout=20) as held:
            assert ask(held, "a.example", "1").startswith("PREPEND Received-SPF: fail")
            write_policy_config(config, "reject")
            process.signal(signal.SIGHUP)
            process.wait_for("settings reloaded")
            # the same connection, not dropped: its next request gets the new settings
            assert ask(held, "a.example", "2").startswith("550 5.7.23 SPF fail")
            # a configuration that cannot be used: logged, the running one kept
            config.write_text("[policy_service]\nspf = 'sometimes'\n")
            process.signal(signal.SIGHUP)
            line = process.wait_for("reload failed")
            assert "policy_service.spf" in line
            assert ask(held, "a.example", "3").startswith("550 5.7.23 SPF fail")
            config.write_text("not toml [")
            process.signal(signal.SIGHUP)
            process.wait_for("not valid TOML")
            with socket.create_connection(hostport(process.info["listen"]), timeout=20) as new:
                assert ask(new, "a.example", "4").startswith("550 5.7.23 SPF fail")
            assert process.popen.poll() is None
    finally:
        assert process.stop() == 0
    assert not any("Traceback" in line for line in process.stderr)


class SlowDNS:
    """A UDP DNS server on loopback: NXDOMAIN for every name, `delay` seconds late for names
    under slow.example."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while self.running:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(wire)
            answer = dns.message.make_response(query)
            answer.set_rcode(dns.rcode.NXDOMAIN)
            slow = any(str(q.name).endswith("slow.example.") for q in query.question)
            timer = threading.Timer(
                self.delay if slow else 0, self.sock.sendto, (answer.to_wire(), peer)
            )
            timer.daemon = True
            timer.start()

    def close(self) -> None:
        self.running = False
        self.sock.close()


@pytest.fixture
def slow_dns() -> Iterator[SlowDNS]:
    server = SlowDNS(1.5)
    try:
        yield server
    finally:
        server.close()


def test_policy_sigterm_finishes_the_request_in_flight(tmp_path: Path, slow_dns: SlowDNS) -> None:
    config = tmp_path / "mailwarden.toml"
    write_policy_config(config, "prepend")
    process = Process(
        "policy", "--config", str(config), "--listen", "127.0.0.1:0",
        "--dns-server", f"127.0.0.1:{slow_dns.port}", "--dns-timeout", "5", "--json",
    )  # fmt: skip
    address = hostport(process.info["listen"])
    with socket.create_connection(address, timeout=20) as busy:
        busy.sendall(REQUEST % (b"slow.example", b"1"))
        time.sleep(0.4)  # the SPF lookup is waiting for the slow server
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = busy.recv(4096)
            assert chunk, f"the request in flight was cut: {data!r} {process.stderr}"
            data += chunk
        assert data.startswith(b"action=PREPEND Received-SPF: none")
        assert busy.recv(4096) == b""  # then the connection is closed
    assert process.stop() == 0
    assert time.monotonic() - started < 10
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5)


SERVE_CONFIG = """\
[gateway]
hostname = "{hostname}"
data_dir = "{data}"
local_domains = ["example.net"]
greet_pause = 0
[gateway.tls]
enabled = false
[dnsbl]
use = []
[greylist]
enabled = false
"""


class SMTP:
    """A line-at-a-time SMTP client over a plain socket."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=20)
        self.file = self.sock.makefile("rb")
        self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode()
            assert line, "connection closed"
            lines.append(line)
            if line[3:4] != "-":
                return "".join(lines)

    def command(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def write_serve_config(path: Path, hostname: str) -> None:
    path.write_text(SERVE_CONFIG.format(hostname=hostname, data=path.parent / "data"))


def delivered(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((root / "data").rglob("new/*")) if p.is_file()]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_reload_and_orderly_stop(tmp_path: Path, zone: Path, workers: str) -> None:
    """In one process and with two workers alike (the default is one per CPU): with two,
    "settings reloaded" is said once both did, and the idle session is told 421 only once
    neither worker accepts (see tests/cli/test_workers.py for each worker in turn)."""
    config = tmp_path / "mailwarden.toml"
    write_serve_config(config, "mx1.test")
    process = Process(
        "serve", "--config", str(config), "--listen", "127.0.0.1:0", "--workers", workers,
        "--dns-zone", str(zone), "--json",
    )  # fmt: skip
    address = hostport(process.info["listen"])
    message = "From: a@a.example\r\nTo: postmaster@example.net\r\nSubject: x\r\n\r\nhi\r\n."
    try:
        early = SMTP(address)  # open across the reload: kept, and on the old pipeline
        assert early.command("EHLO mail.a.example").startswith("250")
        write_serve_config(config, "mx2.test")
        process.signal(signal.SIGHUP)
        process.wait_for("settings reloaded")
        assert early.command("MAIL FROM:<x@a.example>").startswith("250")
        assert early.command("RCPT TO:<postmaster@example.net>").startswith("250")
        assert early.command("DATA").startswith("354")
        assert early.command(message.replace("x\r\n", "early\r\n")).startswith("250")
        assert early.command("QUIT").startswith("221")
        early.close()
        config.write_text('[dnsbl]\nuse = ["nosuchlist"]\n')
        process.signal(signal.SIGHUP)
        process.wait_for("reload failed")
        # a transaction begun before SIGTERM finishes after it; an idle session is told
        client = SMTP(address)
        idle = SMTP(address)
        assert client.command("EHLO mail.a.example").startswith("250")
        assert client.command("MAIL FROM:<x@a.example>").startswith("250")
        assert idle.command("EHLO idle.test").startswith("250")
        process.signal(signal.SIGTERM)
        assert idle.reply().startswith("421 4.3.2 mx1.test Service shutting down")
        idle.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5)  # no new connections
        assert client.command("RCPT TO:<postmaster@example.net>").startswith("250")
        assert client.command("DATA").startswith("354")
        assert client.command(message).startswith("250")
        # the transaction done, the session ends (RFC 5321 §3.8)
        assert client.reply().startswith("421 4.3.2 ")
        client.close()
        assert process.popen.wait(30) == 0
    finally:
        assert process.stop() == 0
    mail = {b"early" in m.split(b"\r\n\r\n")[0]: m for m in delivered(tmp_path)}
    assert len(mail) == 2
    # the connection opened before the reload finished on the old pipeline, the one opened
    # after it got the new one: our Authentication-Results names the host of each
    assert b"Authentication-Results: mx1.test;" in mail[True]
    assert b"Authentication-Results: mx2.test;" in mail[False]
    assert not any("Traceback" in line for line in process.stderr)


def test_submit_reloads_and_stops(tmp_path: Path, zone: Path) -> None:
    config = tmp_path / "mailwarden.toml"
    config.write_text(f'[gateway]\nhostname = "mx.test"\ndata_dir = "{tmp_path / "data"}"\n')
    process = Process(
        "submit", "--config", str(config), "--listen", "127.0.0.1:0",
        "--listen-tls", "127.0.0.1:0", "--dns-zone", str(zone), "--json",
    )  # fmt: skip
    try:
        address = hostport(process.info["listen"][0])
        client = SMTP(address)  # a session open across the reload and the stop
        assert client.command("EHLO client.test").startswith("250")
        process.signal(signal.SIGHUP)
        process.wait_for("settings reloaded")
        config.write_text('[dnsbl]\nuse = ["nosuchlist"]\n')
        process.signal(signal.SIGHUP)
        process.wait_for("reload failed")
        assert client.command("NOOP").startswith("250")  # not dropped
        process.signal(signal.SIGTERM)
        assert client.reply().startswith("421 4.3.2 ")  # between transactions: told at once
        client.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5)
        try:
            process.popen.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError("".join(process.stderr)) from None
    finally:
        assert process.stop() == 0
    assert not any("Traceback" in line for line in process.stderr)
