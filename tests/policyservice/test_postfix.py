"""A real Postfix asking a real `mailwarden policy` process (check_policy_service), clients
played by swaks with XCLIENT (so each test chooses the address Postfix reports)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.gateway.helpers import require_program
from tests.gateway.postfix import Postfix, free_port, start_postfix
from tests.policyservice.helpers import BAD_IP, GOOD_IP, LISTED_IP, write_config

SRC = Path(__file__).resolve().parents[2] / "src"
SERVICE = """\
greylist = "always"
spf = "reject"
"""
GREYLIST = "[greylist]\nmin_delay = 1.0\n"


@dataclass
class Policy:
    process: subprocess.Popen[str]
    address: str
    config: Path


def start_policy(root: Path, port: int, service: str = SERVICE) -> Policy:
    config = write_config(root, service)
    text = config.read_text().replace("[greylist]\nmin_delay = 60.0\n", GREYLIST)
    config.write_text(text)
    command = [
        sys.executable, "-m", "mailwarden", "policy", "--config", str(config),
        "--listen", f"127.0.0.1:{port}", "--dns-zone", str(root / "test.zone"), "--json",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"policy service did not start: {process.stderr.read()}")  # type: ignore[union-attr]
    return Policy(process, json.loads(line)["listen"], config)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Postfix, Policy]]:
    require_program("postfix")
    require_program("swaks")
    root = Path(tempfile.mkdtemp(prefix="mailwarden-policy-postfix-"))
    root.chmod(0o755)  # Postfix's users enter it
    port = free_port()
    policy = start_policy(root / "policy", port)
    extra = f"""
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient,
    check_policy_service {{ inet:127.0.0.1:{port}, timeout=15s, default_action=DUNNO }}
"""
    try:
        postfix = start_postfix(root / "postfix", extra)
        try:
            yield postfix, policy
        finally:
            postfix.stop()
    finally:
        policy.process.terminate()
        policy.process.communicate(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def swaks(postfix: Postfix, ip: str, sender: str, rcpt: str = "bob@example.net") -> str:
    """One delivery attempt from `ip` (XCLIENT); the transcript."""
    result = subprocess.run(
        [
            require_program("swaks"), "--server", f"127.0.0.1:{postfix.port}",
            "--from", sender, "--to", rcpt, "--helo", "mail.a.example",
            "--xclient-addr", ip, "--xclient-name", "[UNAVAILABLE]",
            "--xclient-helo", "mail.a.example", "--header", f"Subject: test {time.time()}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.stdout + result.stderr


def test_greylisting_defers_then_passes_with_received_spf(stack: tuple[Postfix, Policy]) -> None:
    postfix, _ = stack
    postfix.clear()
    first = swaks(postfix, GOOD_IP, "alice@a.example")
    assert "<** 450 4.7.1 <bob@example.net>: Recipient address rejected: Greylisted" in first
    time.sleep(1.5)  # past min_delay
    retry = swaks(postfix, GOOD_IP, "alice@a.example")
    assert "<-  250 2.0.0 Ok: queued" in retry, retry
    delivered = postfix.wait_delivered("bob")
    assert len(delivered) == 1
    head = delivered[0].split(b"\n\n", 1)[0].decode()
    assert "Received-SPF: pass (mx.b.example: domain of alice@a.example designates" in head
    assert "client-ip=192.0.2.10" in head
    assert head.count("Received-SPF:") == 1


def test_spf_fail_refused(stack: tuple[Postfix, Policy]) -> None:
    postfix, _ = stack
    postfix.clear()
    transcript = swaks(postfix, BAD_IP, "alice@a.example")
    refused = "<** 550 5.7.23 <bob@example.net>: Recipient address rejected: SPF fail: "
    assert refused + "a.example does not allow 198.51.100.7" in transcript
    assert postfix.delivered("bob") == []


def test_dns_list_hit_refused(stack: tuple[Postfix, Policy]) -> None:
    postfix, _ = stack
    postfix.clear()
    transcript = swaks(postfix, LISTED_IP, "someone@soft.example")
    refused = "<** 554 5.7.1 <bob@example.net>: Recipient address rejected: Service unavailable; "
    assert refused + "client blocked (TESTBL_LISTED)" in transcript
    assert postfix.delivered("bob") == []


def test_unknown_recipient_refused_by_postfix_before_asking(stack: tuple[Postfix, Policy]) -> None:
    postfix, _ = stack
    transcript = swaks(postfix, LISTED_IP, "x@soft.example", rcpt="nobody@example.net")
    assert "<** 550 5.1.1 <nobody@example.net>" in transcript
