"""The whole lab on real hosts (network namespaces, nsd, Postfix, mailwarden): every scenario
ends as it should, each step shows in what the hosts logged, and nothing is left running, also
when the run is interrupted. Needs root and `ip netns` (CI runs as root); elsewhere the test
says why it cannot run (and fails under CI)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.netns import NETNS_ETC, lab_namespaces, remove_lab
from lab.report import render
from lab.run import Lab
from lab.scenarios import SCENARIOS, Observation, judge
from tests.lab.helpers import require_lab

PROJECT = Path(__file__).resolve().parents[2]
PREFIX = "mwlabt"


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that mention `text` (a lab directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


def _leftovers(prefix: str, root: Path) -> list[str]:
    left = [f"namespace {name}" for name in lab_namespaces(prefix)]
    if NETNS_ETC.is_dir():
        left += [f"/etc/netns/{e.name}" for e in NETNS_ETC.iterdir() if e.name.startswith(prefix)]
    return left + [f"process {c}" for c in _processes_mentioning(str(root))]


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[dict[str, Observation], list[str], Path]]:
    """One run of the lab with every scenario: the observations, the left-overs after it."""
    require_lab()
    root = Path(tempfile.mkdtemp(prefix="mailwarden-lab-test-"))  # Postfix's users enter it
    try:
        with Lab(root, PREFIX) as lab:
            observations = {s.key: lab.send(s) for s in SCENARIOS}
        deadline = time.monotonic() + 10
        while _leftovers(PREFIX, root) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield observations, _leftovers(PREFIX, root), root
    finally:
        remove_lab(PREFIX, root)


def _report(observation: Observation) -> str:
    return "\n".join(render(observation))


@pytest.mark.parametrize("key", [s.key for s in SCENARIOS])
def test_every_scenario_ends_as_it_should(
    run: tuple[dict[str, Observation], list[str], Path], key: str
) -> None:
    observation = run[0][key]
    _, problems = judge(observation)
    assert problems == [], _report(observation)


def _dns(observation: Observation, client: str) -> list[tuple[str, str, str]]:
    return [(e.rdtype, e.name, e.answer_text()) for e in observation.dns if e.client == client]


def test_the_legitimate_message_takes_all_ten_steps(
    run: tuple[dict[str, Observation], list[str], Path],
) -> None:
    observation = run[0]["legit"]
    [submitted] = observation.logs["a"]
    assert (submitted.auth, submitted.tls, submitted.signed) == (
        "alice@a.example",
        "TLSv1.3",
        "signed",
    )
    assert ("MX", "b.example", "10 mx.b.example.") in _dns(observation, "10.99.1.25")
    at_b = _dns(observation, "10.99.2.25")
    for expected in [
        ("A", "25.1.99.10.bl.example", "NXDOMAIN"),
        ("PTR", "25.1.99.10.in-addr.arpa", "mail.a.example."),
        ("A", "mail.a.example", "10.99.1.25"),
        ("TXT", "a.example", '"v=spf1 ip4:10.99.1.25 -all"'),
        ("TXT", "_dmarc.a.example", '"v=DMARC1; p=reject; adkim=r; aspf=r"'),
    ]:
        assert expected in at_b
    # the selectors `mailwarden dkim rotate` named: {algorithm}{yyyymm}
    keys = sorted(name for _, name, _ in at_b if "._domainkey." in name)
    assert [re.sub(r"\d{6}(?=\._domainkey)", "YYYYMM", name) for name in keys] == [
        "ed25519YYYYMM._domainkey.a.example",
        "rsaYYYYMM._domainkey.a.example",
    ]
    report = _report(observation)
    for step in range(1, 11):
        assert f"{step:>4}. " in report
    assert "AUTH PLAIN (credentials hidden)" in report
    assert "C: MAIL FROM:<alice@a.example>" in report  # Postfix's dialogue with the MX


def test_the_spoof_and_the_listed_zombie_stop_where_they_should(
    run: tuple[dict[str, Observation], list[str], Path],
) -> None:
    spoof, listed = run[0]["spoof"], run[0]["listed"]
    assert "550 5.7.1 Rejected by the DMARC policy of a.example" in spoof.transcript
    assert ("PTR", "6.66.99.10.in-addr.arpa", "NXDOMAIN") in _dns(spoof, "10.99.2.25")
    at_b = _dns(listed, "10.99.2.25")
    assert ("A", "66.66.99.10.bl.example", "127.0.0.2") in at_b
    assert not any(name.startswith("_dmarc.") for _, name, _ in at_b)  # never got that far
    assert "DATA" not in [text for marker, text in _swaks(listed) if marker == "->"]
    assert spoof.bob == listed.bob == []


def _swaks(observation: Observation) -> list[tuple[str, str]]:
    from lab.scenarios import swaks_lines

    return swaks_lines(observation.transcript)


def test_the_list_changes_and_seals_and_bob_trusts_the_seal(
    run: tuple[dict[str, Observation], list[str], Path],
) -> None:
    [message] = run[0]["list"].bob
    text = message.decode()
    assert "Subject: [lab] Meeting notes" in text
    assert "-- \nlab mailing list: lab@lists.c.example" in text  # Maildir: LF
    assert "ARC-Seal: a=rsa-sha256;" in text
    assert "d=lists.c.example; i=1; s=arc" in text
    assert "override=trusted_forwarder" in text
    assert "Return-Path: <lab-bounces@lists.c.example>" in text


def test_the_forwarder_rewrites_the_sender_and_the_bounce_finds_alice(
    run: tuple[dict[str, Observation], list[str], Path],
) -> None:
    [forwarded] = run[0]["forward"].bob
    assert forwarded.startswith(b"Return-Path: <SRS0=")
    assert b"smtp.mailfrom=SRS0=" in forwarded
    bounce = run[0]["bounce"]
    [notice] = bounce.alice
    assert b"Final-Recipient: rfc822; robert@b.example" in notice
    assert b"Status: 5.1.1" in notice
    sent = [line for line in bounce.postfix["fwd"].splitlines() if "MAIL FROM:<SRS0=" in line]
    assert sent, "the forwarder's MTA did not send with an SRS address"


def test_nothing_is_left_running(run: tuple[dict[str, Observation], list[str], Path]) -> None:
    assert run[1] == []


def test_an_interrupted_run_takes_everything_down() -> None:
    require_lab()
    root = Path(tempfile.mkdtemp(prefix="mailwarden-lab-stop-"))
    prefix = "mwlabi"
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "--prefix", prefix, "--dir", str(root)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (root / "b" / "mx.err").exists():  # hosts built, programs starting
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the lab never started its programs"
            time.sleep(0.1)
        assert lab_namespaces(prefix)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert b"interrupted; everything it started has been stopped" in err
        assert _leftovers(prefix, root) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        remove_lab(prefix, root)
