"""The milter behind a real Postfix (Debian's), as mail admins run it: smtpd_milters pointing
at our milter, swaks as the SMTP client, the DNS from a static zone inside the milter.

One Postfix and one milter serve the whole module. Postfix trusts loopback for XCLIENT, so a
test can make the client appear from a listed address.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.test_lifecycle import Process
from tests.gateway.helpers import require_program
from tests.gateway.postfix import USERS, Postfix, free_port, port_open, start_postfix
from tests.milter.helpers import HOSTNAME, KEY, LISTED_IP, Background, message

from mailwarden.dkim.keygen import key_record

FORGED = f"Authentication-Results: {HOSTNAME}; spf=pass smtp.mailfrom=forged.example\r\n"
OTHER = "Authentication-Results: other.example; spf=pass smtp.mailfrom=a.example\r\n"


@pytest.fixture(scope="module")
def milter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    background = Background(tmp_path_factory.mktemp("milter"), free_port())
    yield background
    background.stop()


@pytest.fixture(scope="module")
def postfix_milter(milter: Background) -> Iterator[Postfix]:
    root = Path(tempfile.mkdtemp(prefix="mailwarden-milter-postfix-"))
    host, port = milter.address
    extra = f"""
smtpd_milters = inet:{host}:{port}
non_smtpd_milters =
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 5s
milter_command_timeout = 30s
milter_content_timeout = 300s
smtpd_authorized_xclient_hosts = 127.0.0.0/8
"""
    try:
        server = start_postfix(root, extra)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postfix(postfix_milter: Postfix, milter: Background) -> Postfix:
    postfix_milter.ensure_running()
    postfix_milter.clear()
    return postfix_milter


def swaks(postfix: Postfix, raw: bytes, tmp: Path, *args: str, port: int | None = None) -> str:
    data = tmp / f"message-{time.monotonic_ns()}.eml"
    data.write_bytes(raw)
    result = subprocess.run(
        [
            require_program("swaks"),
            *("--server", f"127.0.0.1:{port or postfix.port}", "--helo", "mail.a.example"),
            *("--from", "alice@a.example", "--to", "bob@example.net", "--data", f"@{data}"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout + result.stderr


def nothing_delivered(postfix: Postfix) -> bool:
    time.sleep(0.5)  # a delivery would have happened by now
    return all(postfix.delivered(user) == [] for user in USERS)


def unfolded(raw: bytes) -> list[str]:
    """The header fields of a delivered message (Maildir: LF line ends), one a line."""
    head = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[0].decode()
    return head.replace("\n ", " ").replace("\n\t", " ").split("\n")


def test_legitimate_signed_message_lands_with_our_results(postfix: Postfix, tmp_path: Path) -> None:
    transcript = swaks(postfix, message(), tmp_path)
    assert "250 2.0.0 Ok: queued as" in transcript, transcript
    [delivered] = postfix.wait_delivered("bob")
    lines = unfolded(delivered)
    results = [line for line in lines if line.startswith("Authentication-Results:")]
    assert len(results) == 1, lines
    assert results[0].startswith(f"Authentication-Results: {HOSTNAME};")
    assert "dkim=pass" in results[0]
    assert "dmarc=pass" in results[0]
    assert any(line.startswith("X-Mailwarden-Verdict:") for line in lines)
    # ours come above the message's own fields, and the message's DKIM still verifies
    from_line = next(i for i, line in enumerate(lines) if line.startswith("From:"))
    assert lines.index(results[0]) < from_line


def test_header_fields_reach_the_checks_exactly(postfix: Postfix, tmp_path: Path) -> None:
    """c=simple/simple over a folded, oddly spaced Subject: the header section rebuilt from
    Postfix's packets (HDR_LEADSPC, folded lines) is the one sent, or DKIM would fail."""
    transcript = swaks(postfix, message(simple=True), tmp_path)
    assert "250 2.0.0 Ok: queued as" in transcript, transcript
    [delivered] = postfix.wait_delivered("bob")
    [results] = [f for f in unfolded(delivered) if f.startswith("Authentication-Results:")]
    assert "dkim=pass" in results, results


def test_spoof_under_p_reject_refused_with_our_550(postfix: Postfix, tmp_path: Path) -> None:
    spoof = message().replace(b"From: Alice <alice@a.example>", b"From: <ceo@bank.example>")
    transcript = swaks(postfix, spoof, tmp_path)
    assert "<** 550 5.7.1 " in transcript, transcript
    assert "bank.example" in transcript.split("<** 550 5.7.1 ", 1)[1].splitlines()[0]
    assert nothing_delivered(postfix)


def test_forged_results_removed(postfix: Postfix, tmp_path: Path) -> None:
    raw = message(extra=(OTHER + FORGED).encode())
    transcript = swaks(postfix, raw, tmp_path)
    assert "250 2.0.0 Ok: queued as" in transcript, transcript
    [delivered] = postfix.wait_delivered("bob")
    text = delivered.decode()
    assert "forged.example" not in text  # the forged field is gone
    assert "Authentication-Results: other.example;" in text  # another receiver's stays
    assert text.count(f"Authentication-Results: {HOSTNAME};") == 1  # ours


def test_dns_list_hit_refused_at_rcpt(postfix: Postfix, tmp_path: Path) -> None:
    transcript = swaks(postfix, message(), tmp_path, "--xclient-addr", LISTED_IP)
    rcpt = transcript.split("RCPT TO:<bob@example.net>", 1)[1]
    reply = next(line for line in rcpt.splitlines() if line.startswith("<**"))
    assert reply.startswith(("<** 554 5.7.1 ", "<** 550 5.7.1 ")), transcript
    assert "client blocked (RBL_ZEN" in reply, reply
    assert nothing_delivered(postfix)


def test_milter_stopped_gives_postfix_default_action(
    postfix: Postfix, milter: Background, tmp_path: Path
) -> None:
    """milter_default_action = tempfail: with the milter down, Postfix says 451 4.7.1."""
    # The fixture's probe of Postfix's port opened a milter connection: let it come and go
    # first (Python 3.11's asyncio leaks a connection accepted while its server closes).
    time.sleep(0.3)
    deadline = time.monotonic() + 10
    while milter.connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    milter.halt()
    try:
        transcript = swaks(postfix, message(), tmp_path)
        assert "451 4.7.1" in transcript, transcript
        assert nothing_delivered(postfix)
    finally:
        milter.start(milter.address[1])
    transcript = swaks(postfix, message(), tmp_path)
    assert "250 2.0.0 Ok: queued as" in transcript, transcript


def zone_file(path: Path) -> None:
    """What a `mailwarden milter` process sees of a.example (helpers.zone, as a zone file)."""
    record = key_record(KEY)
    quoted = " ".join(f'"{record[i : i + 200]}"' for i in range(0, len(record), 200))
    path.write_text(
        "$ORIGIN a.example.\n$TTL 300\n"
        '@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"\n'
        f"sel._domainkey IN TXT {quoted}\n"
        '_dmarc IN TXT "v=DMARC1; p=reject"\n'
    )


def test_two_worker_milter_on_a_unix_socket(postfix: Postfix, tmp_path: Path) -> None:
    """`mailwarden milter --workers 2` on a Unix socket behind Postfix's smtpd (which runs as
    Postfix's own user: the socket the supervisor binds keeps the mode 0666 the README counts
    on): every message lands with our results, whichever worker took its connection."""
    folder = Path(tempfile.mkdtemp(prefix="mailwarden-milter-workers-"))
    folder.chmod(0o755)  # Postfix's user must reach the socket
    socket_path = folder / "milter.sock"
    zone_file(folder / "a.zone")
    (folder / "milter.toml").write_text('[gateway]\nhostname = "mx.workers.example"\n')
    process = Process(
        "milter", "--listen", f"unix:{socket_path}", "--workers", "2",
        "--config", str(folder / "milter.toml"), "--dns-zone", str(folder / "a.zone"),
        "--data-dir", str(folder / "data"), "--json",
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while not postfix.queue_empty() and time.monotonic() < deadline:
        time.sleep(0.05)  # the last test's message delivered, not counted here
    postfix.clear()
    master = postfix.config_dir / "master.cf"
    before = master.read_text()
    port = free_port()
    try:
        assert process.info["workers"] == 2
        master.write_text(
            before + f"127.0.0.1:{port} inet n - n - - smtpd\n"
            f"  -o smtpd_milters=unix:{socket_path}\n"
        )
        postfix._run("reload")
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert time.monotonic() < deadline, "postfix did not open the port"
            time.sleep(0.05)
        for _ in range(4):
            transcript = swaks(postfix, message(), tmp_path, port=port)
            assert "250 2.0.0 Ok: queued as" in transcript, transcript
        delivered = postfix.wait_delivered("bob", 4)
        assert len(delivered) == 4
        for raw in delivered:
            [results] = [f for f in unfolded(raw) if f.startswith("Authentication-Results:")]
            assert results.startswith("Authentication-Results: mx.workers.example;"), results
            assert "dkim=pass" in results, results
            assert "dmarc=pass" in results, results
    finally:
        master.write_text(before)
        postfix._run("reload")
        assert process.stop() == 0
        shutil.rmtree(folder, ignore_errors=True)
    assert "Traceback" not in "".join(process.stderr)
    assert not socket_path.exists()
