"""`mailwarden srs --listen` behind a real Postfix, configured as postsrsd users do
(sender_canonical_maps and recipient_canonical_maps over socketmap): a forwarded message
leaves with an SRS sender, a local sender is left alone, and a bounce to the SRS address is
delivered to the original sender."""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.gateway.helpers import messages
from tests.gateway.postfix import Postfix, free_port, port_open, start_postfix

from mailwarden.srs import SRS, read_secrets

SRS_DOMAIN = "srs.example.net"


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailwarden", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"did not start: {process.stderr.read() if process.stderr else ''!r}"
            )
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Postfix, Path, Path]]:
    root = tmp_path_factory.mktemp("srs-postfix")
    # Postfix's users must be able to enter its root: outside pytest's private tree
    postfix_root = Path(tempfile.mkdtemp(prefix="mailwarden-srs-postfix-"))
    secret = root / "srs.secret"
    secret.write_text("a secret shared with postsrsd\n")
    config = root / "mailwarden.toml"
    config.write_text(
        f'[gateway]\nlocal_domains = ["example.net"]\n'
        f'[forwarding]\nsrs_domain = "{SRS_DOMAIN}"\nsrs_secret_file = "{secret}"\n'
    )
    srs_port, sink_port = free_port(), free_port()
    srs = spawn("srs", "--listen", f"127.0.0.1:{srs_port}", "--config", str(config), "--json")
    sink_dir = root / "sink"
    sink = spawn("sink", "--listen", f"127.0.0.1:{sink_port}", "--maildir", str(sink_dir))
    postfix = None
    try:
        wait_port(srs_port, srs)
        wait_port(sink_port, sink)
        assert srs.stdout is not None
        announced = json.loads(srs.stdout.readline())
        assert announced["socketmap"] == f"127.0.0.1:{srs_port}"
        table = f"socketmap:inet:127.0.0.1:{srs_port}"
        route = f"smtp:[127.0.0.1]:{sink_port}"
        postfix = start_postfix(
            postfix_root,
            f"""
virtual_alias_maps = inline:{{ fwd@example.net=carol@remote.example }}
transport_maps = inline:{{ remote.example={route} a.example={route} }}
sender_canonical_maps = {table}:forward
sender_canonical_classes = envelope_sender
recipient_canonical_maps = {table}:reverse
recipient_canonical_classes = envelope_recipient
smtp_host_lookup = native
""",
        )
        yield postfix, sink_dir, secret
    finally:
        if postfix is not None:
            postfix.stop()
        stop(srs)
        stop(sink)
        shutil.rmtree(postfix_root, ignore_errors=True)


def wait_for(maildir: Path, count: int) -> list[bytes]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = messages(maildir)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return messages(maildir)


def envelope(message: bytes) -> tuple[str, list[str]]:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    sender = lines[0].removeprefix("Return-Path: <").removesuffix(">")
    rcpts = [
        line.removeprefix("Delivered-To: ") for line in lines if line.startswith("Delivered-To:")
    ]
    return sender, rcpts


def send(postfix: Postfix, sender: str, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=20) as client:
        client.sendmail(
            sender,
            [rcpt],
            f"From: <{sender or 'mailer-daemon@example.net'}>\r\nTo: <{rcpt}>\r\n"
            f"Subject: {subject}\r\n\r\nbody\r\n".encode(),
        )


def test_forward_and_bounce_through_postfix(setup: tuple[Postfix, Path, Path]) -> None:
    postfix, sink, secret = setup
    before = len(messages(sink))
    # a forwarded message: Postfix asks the forward map, the sender becomes SRS0
    send(postfix, "Alice@A.Example", "fwd@example.net", "forwarded")
    found = wait_for(sink, before + 1)
    sender, rcpts = envelope(found[-1])
    assert rcpts == ["carol@remote.example"]
    assert sender.startswith("SRS0=")
    assert sender.endswith(f"@{SRS_DOMAIN}")
    ours = SRS(SRS_DOMAIN, read_secrets(secret))
    assert ours.reverse(sender).lower() == "alice@a.example"  # Postfix lower-cases the domain
    # a local sender is left alone
    send(postfix, "bob@example.net", "fwd@example.net", "local sender")
    found = wait_for(sink, before + 2)
    assert envelope(found[-1]) == ("bob@example.net", ["carol@remote.example"])
    # the bounce to the SRS address reaches the original sender
    send(postfix, "", sender, "bounce")
    found = wait_for(sink, before + 3)
    bounce_sender, bounce_rcpts = envelope(found[-1])
    assert bounce_sender == ""
    assert [r.lower() for r in bounce_rcpts] == ["alice@a.example"]  # domains in lower case
    assert b"Subject: bounce" in found[-1]


def test_a_forged_srs_address_is_not_reversed(setup: tuple[Postfix, Path, Path]) -> None:
    postfix, sink, _ = setup
    before = len(messages(sink))
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=20) as client:
        client.sendmail(
            "", [f"SRS0=AAAA=AA=a.example=alice@{SRS_DOMAIN}"], b"Subject: x\r\n\r\nx\r\n"
        )
    time.sleep(2)
    assert all(
        [r.lower() for r in envelope(m)[1]] != ["alice@a.example"] for m in messages(sink)[before:]
    )  # never delivered to alice: Postfix keeps it (no route to the SRS domain) or bounces it
