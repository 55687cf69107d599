"""`mailwarden serve` and `mailwarden sink`: options, errors, and real processes."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from mailwarden.cli import run

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "mailwarden.toml")
# The gateway's checks answer from this zone (tests never depend on live DNS): the local
# client is a legitimate sender for example.com, with a matching HELO and reverse name.
ZONE_TEXT = """\
$ORIGIN example.com.
@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
mail IN A 127.0.0.1
1.0.0.127.in-addr.arpa. IN PTR mail.example.com.
"""
HELO = "mail.example.com"


@pytest.fixture(autouse=True)
def zone_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "test.zone"
    path.write_text(ZONE_TEXT)
    monkeypatch.setenv("MAILWARDEN_TEST_ZONE", str(path))
    return path


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "serve", "--help")
    assert code == 0
    for option in [
        "--config",
        "--listen",
        "--relay-to",
        "--local-domain",
        "--hostname",
        "--data-dir",
        "--greet-pause",
        "--dns-server",
        "--dns-zone",
        "--json",
    ]:
        assert option in out
    code, out, _ = invoke(capsys, "sink", "--help")
    assert code == 0
    assert "--maildir" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "--listen: missing :PORT in 'nowhere'"),
        (["--relay-to", "host:notaport"], "--relay-to: invalid port 'notaport'"),
        (["--config", "/nonexistent.toml"], "/nonexistent.toml: cannot read"),
        (["--hostname", "a b"], "--hostname: not a host name"),
        (["--local-domain", "."], "--local-domain: item [0]: expected a domain name"),
        (["--greet-pause", "-1"], "--greet-pause"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = invoke(capsys, "serve", *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_config_names_file_and_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[gateway]\nprotocol = "uucp"\n')
    code, _, err = invoke(capsys, "serve", "--config", str(path))
    assert code == 2
    assert f'{path}: gateway.protocol: expected one of "smtp", "lmtp", got ' in err


@contextmanager
def process(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    """Start `mailwarden ARGS --json`; yield it with its startup JSON; stop it with SIGTERM."""
    offline = ["--dns-zone", os.environ["MAILWARDEN_TEST_ZONE"]] if args[0] == "serve" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailwarden", *args, *offline, "--json"],
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
        yield proc, json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def read_json_line(stream: IO[str] | None) -> dict[str, object]:
    assert stream is not None
    return dict(json.loads(stream.readline()))


def test_serve_relays_to_the_sink_command(tmp_path: Path) -> None:
    sink_port, gw_port = free_port(), free_port()
    maildir = tmp_path / "sink-maildir"
    with process("sink", "--listen", f"127.0.0.1:{sink_port}", "--maildir", str(maildir)) as (
        _sink,
        sink_info,
    ):
        assert sink_info == {"listen": f"127.0.0.1:{sink_port}", "maildir": str(maildir)}
        with process(
            "serve",
            "--config",
            EXAMPLE,
            "--listen",
            f"127.0.0.1:{gw_port}",
            "--relay-to",
            f"127.0.0.1:{sink_port}",
            "--local-domain",
            "example.org",
            "--hostname",
            "mx.cli.example",
            "--data-dir",
            str(tmp_path / "data"),
            "--greet-pause",
            "0",
        ) as (gateway, info):
            assert info["listen"] == f"127.0.0.1:{gw_port}"
            assert info["local_domains"] == ["example.org"]
            assert "swaks --server" in str(info["try"])
            with smtplib.SMTP("127.0.0.1", gw_port, HELO, timeout=10) as client:
                refused = client.sendmail(
                    "alice@example.com",
                    ["bob@example.org"],
                    b"From: alice@example.com\r\nSubject: cli\r\n\r\nhello\r\n",
                )
                assert refused == {}
                with pytest.raises(smtplib.SMTPRecipientsRefused):
                    client.sendmail("alice@example.com", ["bob@example.net"], b"Subject: x\r\n\r\n")
            record = read_json_line(gateway.stdout)
            assert record["type"] == "transaction"
            assert record["delivered"] is True
            assert record["rcpts"] == ["bob@example.org"]
        assert gateway.returncode == 0
    [delivered] = list((maildir / "new").iterdir())
    text = delivered.read_bytes()
    assert b"by mx.cli.example (mailwarden)" in text
    assert text.endswith(b"\r\n\r\nhello\r\n")


def test_serve_without_downstream_uses_the_builtin_sink(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    with process(
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--local-domain",
        "example.net",
        "--data-dir",
        str(data),
        "--greet-pause",
        "0.2",
    ) as (_, info):
        assert str(data / "sink" / "Maildir") in str(info["downstream"])
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", port, HELO, timeout=10) as client:
            assert time.monotonic() - started >= 0.2  # the greet pause
            client.starttls()  # the self-signed pair generated in the data directory
            client.ehlo()
            client.sendmail(
                "a@example.com",
                ["bob@example.net"],
                b"From: a@example.com\r\nSubject: s\r\n\r\nhi\r\n",
            )
    assert (data / "tls" / "cert.pem").exists()
    [delivered] = list((data / "sink" / "Maildir" / "new").iterdir())
    assert "with ESMTPS" in delivered.read_text()


def test_port_in_use_is_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mailwarden",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
