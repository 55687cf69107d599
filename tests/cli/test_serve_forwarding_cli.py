"""`mailwarden serve` with forwarding and DKIM rotation configured, as a real process: the
SRS domain is accepted, forged SRS addresses are refused, a pending key whose record the
zone publishes becomes active without any command, and bad forwarding settings exit 2."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.gateway.postfix import free_port

from mailwarden.cli import run
from mailwarden.dkim import KeyType, generate_key, key_record, zone_entry
from mailwarden.signing import DirectoryStore, ManagedKey, Stage
from mailwarden.srs import SRS

ZONE = """\
$ORIGIN example.com.
@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
"""


def write_config(tmp_path: Path, port: int, aliases: str = "fwd@b.example: c@c.example\n") -> Path:
    (tmp_path / "aliases").write_text(aliases)
    (tmp_path / "srs.secret").write_text("serve secret\n")
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nhostname = "mx.b.example"\n'
        f'local_domains = ["b.example"]\ndata_dir = "data"\ngreet_pause = 0.0\nlog_file = ""\n'
        "[gateway.tls]\nenabled = false\n[greylist]\nenabled = false\n[dnsbl]\nuse = []\n"
        '[forwarding]\naliases = "aliases"\nsrs_domain = "srs.b.example"\n'
        'srs_secret_file = "srs.secret"\n'
    )
    return config


def test_bad_forwarding_settings_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), aliases="fwd@b.example\n")
    code = run(["serve", "--config", str(config), "--dns-zone", "/dev/null"])
    err = capsys.readouterr().err
    assert code == 2
    assert "forwarding:" in err
    assert "line 1" in err
    assert err.count("\n") == 1


def test_serve_forwards_and_rotates(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    key = generate_key(KeyType.ED25519)
    record = key_record(key)
    store = DirectoryStore(tmp_path / "data" / "dkim")
    store.save(
        [ManagedKey("b.example", "ed1", KeyType.ED25519, 256, record, time.time(), Stage.PENDING)]
    )
    store.write_private_key("b.example", "ed1", key)
    zone = tmp_path / "test.zone"
    zone.write_text(ZONE + zone_entry("ed1", "b.example", record) + "\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailwarden",
            "serve",
            "--config",
            str(config),
            "--dns-zone",
            str(zone),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
        assert announced["listen"] == f"127.0.0.1:{port}"
        assert "srs.b.example" in announced["local_domains"]
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.ehlo("mail.example.com")
            assert client.mail("")[0] == 250
            code, text = client.rcpt("SRS0=AAAA=AA=a.example=zoe@srs.b.example")
            assert (code, text[:5]) == (550, b"5.1.1")
            good = SRS("srs.b.example", (b"serve secret",)).forward("zoe@example.com")
            code, _ = client.rcpt(good)
            assert code in (250, 451)  # accepted by us; 451 only if no relay answers
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if [k.stage for k in store.load()] == [Stage.ACTIVE]:
                break
            time.sleep(0.2)
        assert [k.stage for k in store.load()] == [Stage.ACTIVE]  # the periodic task ran
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        finally:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
    assert process.returncode == 0
