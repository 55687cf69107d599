"""`mailwarden http` and `mailwarden serve --http`: options, errors, and real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.cli.test_lifecycle import Process, SlowDNS
from tests.cli.test_workers import children, wait_for

from mailwarden.cli import run
from mailwarden.milter import negotiate

TOKEN = "a-token-for-the-cli-tests-42"


@pytest.fixture
def slow_dns() -> Iterator[SlowDNS]:
    server = SlowDNS(1.5)
    try:
        yield server
    finally:
        server.close()


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "test.zone"
    path.write_text('$ORIGIN example.com.\n@ 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"\n')
    return path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--listen", "0.0.0.0:8025"], "not a loopback address: set [http] token"),
        (["--listen", "[::]:8025"], "not a loopback address"),
        (["--listen", "127.0.0.1:99999"], "--listen"),
        (["--listen", "nonsense:port"], "--listen"),
    ],
)
def test_bad_listeners_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zone: Path, args: list[str], says: str
) -> None:
    code, out, err = invoke(
        capsys, "http", *args, "--dns-zone", str(zone), "--data-dir", str(tmp_path / "d")
    )
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("mailwarden: error: ")
    assert says in err


def test_an_unreadable_token_file_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zone: Path
) -> None:
    config = tmp_path / "mw.toml"
    config.write_text(f'[http]\ntoken_file = "{tmp_path / "missing"}"\n')
    code, _, err = invoke(capsys, "http", "--config", str(config), "--dns-zone", str(zone))
    assert code == 2
    assert "http.token_file" in err
    assert "cannot read" in err


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def process(*args: str) -> Iterator[dict[str, object]]:
    """`mailwarden ARGS --json`: its start-up line while it runs; SIGTERM must end it with 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            assert proc.stderr is not None
            pytest.fail(f"did not start: {proc.stderr.read()}")
        yield dict(json.loads(line))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_runs_the_api_beside_the_gateway(tmp_path: Path, zone: Path, workers: str) -> None:
    """In one process, and with two workers (the API in worker 0: its stores, its address
    announced by the supervisor)."""
    config = tmp_path / "mw.toml"
    config.write_text(f'[dnsbl]\nuse = []\n[http]\ntoken = "{TOKEN}"\n')
    args = ["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--hostname", "mx.test"]
    args += ["--workers", workers]
    args += ["--config", str(config), "--dns-zone", str(zone), "--data-dir", str(tmp_path / "d")]
    with process(*args) as info:
        base = f"http://{info['http']}"
        # the gateway's stores, and the dashboard's store of recent transactions
        checks = {"dns": "ok", "greylist": "ok", "reports": "ok", "transactions": "ok"}
        assert _get(f"{base}/health") == (200, {"status": "ok", "checks": checks})
        status, settings = _get(f"{base}/v1/settings", TOKEN)
        assert status == 200
        assert settings["gateway"]["hostname"] == "mx.test"  # type: ignore[index]
        status, problem = _get(f"{base}/v1/settings")
        assert status == 401
        assert problem["status"] == 401
        host, port = str(info["listen"]).rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as smtp:  # the gateway too
            assert smtp.recv(100).startswith(b"220 ")


def test_milter_runs_the_api_and_dashboard_beside_it(tmp_path: Path, zone: Path) -> None:
    """`milter --http`: the milter negotiates as Postfix would while the API and the dashboard
    answer on their own port (same pipeline, same stores)."""
    config = tmp_path / "mw.toml"
    config.write_text(f'[dnsbl]\nuse = []\n[http]\ntoken = "{TOKEN}"\n')
    args = ["milter", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    args += ["--config", str(config), "--dns-zone", str(zone), "--data-dir", str(tmp_path / "d")]
    with process(*args) as info:
        base = f"http://{info['http']}"
        status, health = _get(f"{base}/health")
        assert status == 200, health
        assert set(health["checks"]) == {"dns", "greylist", "reports", "transactions"}  # type: ignore[arg-type]
        status, board = _get(f"{base}/v1/dashboard", TOKEN)
        assert status == 200, board
        assert _get(f"{base}/v1/dashboard")[0] == 401
        host, port = str(info["listen"]).rsplit(":", 1)
        negotiated = asyncio.run(negotiate(host, int(port)))
        assert negotiated.version == 6


def test_serve_http_on_a_taken_port_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zone: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = invoke(
            capsys, "serve", "--listen", "127.0.0.1:0", "--http", f"127.0.0.1:{port}",
            "--hostname", "mx.test", "--dns-zone", str(zone), "--data-dir", str(tmp_path / "d"),
        )  # fmt: skip
    assert code == 2
    assert "cannot listen on" in err
    assert err.count("\n") == 1


SERVE_HTTP = ["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--hostname", "mx.t"]


def _config(path: Path, token: str, data: Path) -> None:
    path.write_text(
        f'[gateway]\ndata_dir = "{data}"\n[dnsbl]\nuse = []\n[http]\ntoken = "{token}"\n'
    )


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (["http", "--listen", "127.0.0.1:0"], "listen"),
        (
            [*SERVE_HTTP, "--workers", "1"],
            "http",
        ),
        (
            [*SERVE_HTTP, "--workers", "2"],
            "http",
        ),
    ],
)
def test_sighup_reloads_the_token_and_a_bad_file_keeps_the_running_one(
    tmp_path: Path, zone: Path, command: list[str], key: str
) -> None:
    config = tmp_path / "mw.toml"
    other = "another-token-for-the-reload-7"
    _config(config, TOKEN, tmp_path / "data")
    process = Process(*command, "--config", str(config), "--dns-zone", str(zone), "--json")
    try:
        base = f"http://{process.info[key]}"
        assert _get(f"{base}/v1/settings", TOKEN)[0] == 200
        _config(config, other, tmp_path / "data")
        process.signal(signal.SIGHUP)
        process.wait_for("settings reloaded")
        assert _get(f"{base}/v1/settings", TOKEN)[0] == 401
        assert _get(f"{base}/v1/settings", other)[0] == 200
        config.write_text('[http]\ntoken = "short"\n')
        process.signal(signal.SIGHUP)
        assert "http.token" in process.wait_for("reload failed")
        assert _get(f"{base}/v1/settings", other)[0] == 200
        assert _get(f"{base}/health")[0] == 200
    finally:
        assert process.stop() == 0
    assert not any("Traceback" in line for line in process.stderr)


def listener_pid(port: int, pids: list[int]) -> int:
    """Which of `pids` listens on `port` (from /proc: the socket's inode, then the fds)."""
    inodes = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return pid
    raise AssertionError(f"no process of {pids} listens on {port}")


def test_a_restarted_worker_0_keeps_the_api_where_it_was(tmp_path: Path, zone: Path) -> None:
    """`serve --workers 2 --http 127.0.0.1:0`: worker 0 (the API's) killed after a reload
    comes back on the same port (not another free one), with the reloaded token."""
    config = tmp_path / "mw.toml"
    other = "another-token-for-the-reload-7"
    _config(config, TOKEN, tmp_path / "data")
    process = Process(
        *SERVE_HTTP, "--workers", "2", "--config", str(config), "--dns-zone", str(zone), "--json"
    )
    try:
        base = f"http://{process.info['http']}"
        wait_for(lambda: len(children(process.popen.pid)) == 2)
        pids = children(process.popen.pid)
        _config(config, other, tmp_path / "data")
        process.signal(signal.SIGHUP)
        process.wait_for("settings reloaded")
        first = listener_pid(int(process.info["http"].rsplit(":", 1)[1]), pids)
        os.kill(first, signal.SIGKILL)
        process.wait_for("worker 0 died (signal 9): restarting it")

        def answers() -> bool:
            with contextlib.suppress(OSError):
                return _get(f"{base}/health")[0] == 200
            return False

        wait_for(answers)
        assert _get(f"{base}/v1/settings", other)[0] == 200
        assert _get(f"{base}/v1/settings", TOKEN)[0] == 401
    finally:
        assert process.stop() == 0
    assert not any("Traceback" in line for line in process.stderr)


def test_sigterm_answers_the_check_in_flight(tmp_path: Path, slow_dns: SlowDNS) -> None:
    """A check waiting 1.5 s for DNS when SIGTERM comes is answered, then the program ends
    with 0."""
    config = tmp_path / "mw.toml"
    _config(config, TOKEN, tmp_path / "data")
    process = Process(
        "http", "--listen", "127.0.0.1:0", "--config", str(config), "--json",
        "--dns-server", f"127.0.0.1:{slow_dns.port}", "--dns-timeout", "5", "--dns-retries", "0",
    )  # fmt: skip
    answer: dict[str, object] = {}

    def post() -> None:
        request = urllib.request.Request(
            f"http://{process.info['listen']}/v1/check?ip=192.0.2.1&helo=mail.slow.example"
            "&mail_from=a%40slow.example",
            data=b"From: a@slow.example\r\nSubject: x\r\n\r\nx\r\n",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer["status"] = response.status
            answer["verdict"] = json.loads(response.read())

    try:
        client = threading.Thread(target=post)
        client.start()
        time.sleep(0.7)  # the check waits for slow.example's answers
        process.signal(signal.SIGTERM)
        client.join(30)
        assert answer.get("status") == 200
        assert "policy" in answer["verdict"]  # type: ignore[operator]
        assert process.popen.wait(30) == 0  # ended by the one SIGTERM
    finally:
        assert process.stop() == 0
