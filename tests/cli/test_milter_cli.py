"""`mailwarden milter`: options, errors, and a real process negotiating and stopping."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailwarden.cli import run
from mailwarden.milter import negotiate


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "unix:relative.sock"], "unix:/absolute/path"),
        (["--listen", "127.0.0.1"], "--listen"),
        (["--listen", "127.0.0.1:70000"], "--listen"),
    ],
)
def test_bad_listen_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, out, err = invoke(capsys, "milter", "--data-dir", str(tmp_path), *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_deadlines_must_fit_postfix_budgets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "m.toml"
    config.write_text("[deadlines]\ndata = 400\n[milter]\ncontent_timeout = 300\n")
    code, _, err = invoke(capsys, "milter", "--config", str(config), "--data-dir", str(tmp_path))
    assert code == 2
    assert "deadlines.data (400 s) must be below milter.content_timeout (300 s)" in err


def test_runs_negotiates_and_stops_on_sigterm(tmp_path: Path) -> None:
    zone = tmp_path / "empty.zone"
    zone.write_text("$ORIGIN .\n$TTL 300\n")
    source = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": source}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mailwarden", "milter", "--listen", "127.0.0.1:0", "--json"),
            *("--dns-zone", str(zone), "--data-dir", str(tmp_path / "data")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        host, _, port = info["listen"].rpartition(":")
        result = asyncio.run(negotiate(host, int(port), 10))
        assert result.version == 6
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


async def _results_authserv(host: str, port: int) -> str:
    """One message through the milter; the authserv-id of the Authentication-Results."""
    from tests.milter.helpers import commands
    from tests.milter.test_server import play

    from mailwarden.milter import MilterClient
    from mailwarden.milter import protocol as p

    raw = b"From: a@a.example\r\nTo: b@b.example\r\nSubject: x\r\n\r\nhi\r\n"
    client = await MilterClient.connect(host, port)
    async with client:
        negotiated = await client.negotiate()
        answers = await play(client, negotiated.protocol, commands(raw))
    inserted = {r.name: r.value for _, rs in answers for r in rs if isinstance(r, p.InsertHeader)}
    return inserted["Authentication-Results"].split(";")[0].strip()


def test_sighup_reloads_for_new_sessions(tmp_path: Path) -> None:
    zone = tmp_path / "empty.zone"
    zone.write_text("$ORIGIN .\n$TTL 300\n")
    config = tmp_path / "m.toml"
    config.write_text('[gateway]\nhostname = "one.example"\n[dnsbl]\nuse = []\n')
    source = str(Path(__file__).resolve().parents[2] / "src")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mailwarden", "milter", "--listen", "127.0.0.1:0", "--json"),
            *("--config", str(config), "--dns-zone", str(zone)),
            *("--data-dir", str(tmp_path / "data")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": source},
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        host, _, port = json.loads(process.stdout.readline())["listen"].rpartition(":")
        assert asyncio.run(_results_authserv(host, int(port))) == "one.example"
        config.write_text('[gateway]\nhostname = "two.example"\n[dnsbl]\nuse = []\n')
        process.send_signal(signal.SIGHUP)
        assert "settings reloaded" in process.stderr.readline()
        assert asyncio.run(_results_authserv(host, int(port))) == "two.example"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
