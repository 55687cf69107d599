"""`mailwarden http` and `mailwarden serve --http`: options, errors, and real processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailwarden.cli import run

TOKEN = "a-token-for-the-cli-tests-42"


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


def test_serve_runs_the_api_beside_the_gateway(tmp_path: Path, zone: Path) -> None:
    config = tmp_path / "mw.toml"
    config.write_text(f'[dnsbl]\nuse = []\n[http]\ntoken = "{TOKEN}"\n')
    args = ["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--hostname", "mx.test"]
    args += ["--config", str(config), "--dns-zone", str(zone), "--data-dir", str(tmp_path / "d")]
    with process(*args) as info:
        base = f"http://{info['http']}"
        checks = {"dns": "ok", "greylist": "ok", "reports": "ok"}  # the gateway's stores
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
