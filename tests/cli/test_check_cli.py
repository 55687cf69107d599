"""`mailwarden check`: one message or a manifest, JSON keys as the issue spells them."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.cli import check as check_module
from mailwarden.cli import run
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record, txt_strings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
MESSAGE = (
    b"From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: hi\r\n"
    b"Message-ID: <2@a.example>\r\n\r\nHello.\r\n"
)


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    strings = " ".join(f'"{s}"' for s in txt_strings(key_record(KEY)))
    (tmp_path / "zone").write_text(
        "$ORIGIN a.example.\n"
        '@ IN TXT "v=spf1 ip4:192.0.2.0/28 -all"\n'
        "mail IN A 192.0.2.10\n"
        f"sel._domainkey IN TXT {strings}\n"
        '_dmarc IN TXT "v=DMARC1; p=reject"\n'
        "$ORIGIN bank.example.\n"
        '_dmarc IN TXT "v=DMARC1; p=reject"\n'
        "10.2.0.192.in-addr.arpa. IN PTR mail.a.example.\n"
    )
    good = sign(MESSAGE, "a.example", "sel", KEY, timestamp=int(time.time())) + MESSAGE
    (tmp_path / "good.eml").write_bytes(good.replace(b"\r\n", b"\n"))  # as stored on disk
    (tmp_path / "spoof.eml").write_bytes(MESSAGE.replace(b"alice@a.example", b"ceo@bank.example"))
    return tmp_path


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def offline(setup: Path) -> list[str]:
    return ["--dns-zone", str(setup / "zone"), "--hostname", "mx.b.example"]


def test_json_verdict_has_the_documented_keys(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = invoke(
        capsys,
        "check",
        str(setup / "good.eml"),
        "--ip",
        "192.0.2.10",
        "--helo",
        "mail.a.example",
        "--mail-from",
        "alice@a.example",
        "--rcpt",
        "bob@b.example",
        "--json",
        *offline(setup),
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert set(data) >= {"spf", "dkim", "dmarc", "arc", "authentication_results"}
    assert set(data) >= {"iprev", "helo", "dnsbl", "policy"}
    assert data["spf"]["result"] == "pass"
    assert data["spf"]["helo"]["result"] == "none"
    assert set(data["dkim"][0]) >= {
        "result",
        "reason",
        "domain",
        "selector",
        "algorithm",
        "key_bits",
        "header_b",
    }
    assert data["dkim"][0]["result"] == "pass"
    dmarc = data["dmarc"]
    assert set(dmarc) >= {
        "result",
        "domain",
        "policy",
        "disposition",
        "reason",
        "discovery_method",
        "alignment",
    }
    assert (dmarc["result"], dmarc["domain"], dmarc["discovery_method"]) == (
        "pass",
        "a.example",
        "treewalk",
    )
    assert dmarc["alignment"]["spf"] is True
    assert dmarc["alignment"]["dkim"] is True
    assert set(data["arc"]) >= {"result", "oldest_pass"}
    assert data["policy"]["action"] == "accept"
    assert data["authentication_results"].startswith("Authentication-Results: mx.b.example;")


def test_spoof_is_reject_in_human_output(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(
        capsys,
        "check",
        str(setup / "spoof.eml"),
        "--ip",
        "192.0.2.11",
        "--helo",
        "mail.a.example",
        "--mail-from",
        "alice@a.example",
        "--no-network-checks",
        *offline(setup),
    )
    assert code == 0
    assert "action: reject" in out
    assert "DMARC_POLICY_REJECT" in out
    assert "Authentication-Results: mx.b.example;" in out


def test_batch_keeps_order_and_reports_bad_lines(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"file": "good.eml", "ip": "192.0.2.10", "helo": "mail.a.example",
         "mail_from": "alice@a.example", "rcpt": ["bob@b.example"]},
        {"file": "spoof.eml", "ip": "192.0.2.11", "helo": "mail.a.example",
         "mail_from": "alice@a.example", "rcpt": "bob@b.example"},
        {"file": "missing.eml", "ip": "192.0.2.10", "helo": "h"},
        {"file": "good.eml", "ip": "not-an-ip", "helo": "h"},
    ]  # fmt: skip
    manifest = setup / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    code, out, _ = invoke(capsys, "check", "--batch", str(manifest), "--json", *offline(setup))
    assert code == 1
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 5
    assert [r.get("file") for r in results[:4]] == [
        "good.eml",
        "spoof.eml",
        "missing.eml",
        "good.eml",
    ]
    assert results[0]["policy"]["action"] == "accept"
    assert results[1]["policy"]["action"] == "reject"
    assert "cannot read" in results[2]["error"]
    assert "invalid IP" in results[3]["error"]
    assert results[4]["line"] == 5


@pytest.mark.parametrize(
    "args",
    [
        ["check", "nofile.eml", "--ip", "192.0.2.1", "--helo", "h"],
        ["check", "x.eml", "--ip", "300.1.1.1", "--helo", "h"],
        ["check", "x.eml"],
        ["check", "x.eml", "--ip", "192.0.2.1", "--helo", "h", "--config", "/nonexistent.toml"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = invoke(capsys, *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_config_file_drives_the_policy(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup / "mailwarden.toml"
    config.write_text("[policy]\ndmarc_reject = false\n[dnsbl]\nuse = []\n")
    code, out, _ = invoke(
        capsys,
        "check",
        str(setup / "spoof.eml"),
        "--ip",
        "192.0.2.11",
        "--helo",
        "mail.a.example",
        "--mail-from",
        "alice@a.example",
        "--config",
        str(config),
        "--json",
        *offline(setup),
    )
    assert code == 0
    assert json.loads(out)["policy"]["action"] == "add_header"  # 8 points, no hard reject
    config.write_text("[policy]\nbogus = 1\n")
    code, _, err = invoke(
        capsys, "check", "x.eml", "--ip", "192.0.2.1", "--helo", "h", "--config", str(config)
    )
    assert code == 2
    assert "policy.bogus" in err


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        ("fe80::1%eth0", "scoped IPv6 address"),  # used to exit 70
        ("999.1.1.1", "an IPv4 address is four numbers"),
        ("192.0.2.1\x7f", "control or non-ASCII"),
    ],
)
def test_bad_client_address_is_exit_2(
    setup: Path, capsys: pytest.CaptureFixture[str], ip: str, message: str
) -> None:
    code, out, err = invoke(
        capsys, "check", str(setup / "good.eml"), "--ip", ip, "--helo", "h", *offline(setup)
    )
    assert (code, out) == (2, "")
    assert message in err
    assert len(err.splitlines()) == 1


def test_one_bad_line_never_aborts_the_batch(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scoped address used to abort the whole batch (exit 70); a blank line was reported as
    "Expecting value: line 2 column 1"; a non-UTF-8 line stopped everything with exit 2."""
    good = {"file": "good.eml", "ip": "192.0.2.10", "helo": "mail.a.example"}
    manifest = setup / "manifest.jsonl"
    manifest.write_bytes(
        json.dumps(good).encode()
        + b"\n"
        + json.dumps(good | {"ip": "fe80::1%eth0"}).encode()
        + b"\n\n"
        + b'{"file": "good.eml", "ip": "192.0.2.10", "helo": "\xff"}\n'
        + json.dumps(good | {"file": "bad\x00name.eml"}).encode()
        + b"\n"
        + json.dumps(good | {"file": str(setup)}).encode()
        + b"\n"
        + json.dumps(good | {"mail_from": "a@a..b"}).encode()
        + b"\n"
        + json.dumps(good).encode()
    )
    code, out, err = invoke(capsys, "check", "--batch", str(manifest), "--json", *offline(setup))
    assert (code, err) == (1, "")
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 8
    assert results[0]["policy"]["action"] == results[7]["policy"]["action"]
    assert results[1] == {
        "line": 2,
        "file": "good.eml",
        "error": results[1]["error"],
    }
    assert "scoped IPv6 address" in results[1]["error"]
    assert results[2] == {"line": 3, "file": None, "error": "empty line"}
    assert results[3]["error"].startswith("not UTF-8 text")
    assert "null" in results[4]["error"]
    assert results[5]["error"].startswith("cannot read: ")
    assert results[6]["spf"]["result"] == "none"  # RFC 7208 §4.3, not an error


def test_batch_files_read_inline_or_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small regular files are read in the loop; larger ones and FIFOs (a read that may wait
    on a writer) in a thread, so the other messages' checks go on."""
    small = tmp_path / "small.eml"
    small.write_bytes(b"A: 1\r\n\r\nbody\r\n")
    threaded: list[Path] = []
    real_to_thread = asyncio.to_thread

    async def spy(function: Any, *args: Any) -> Any:
        threaded.append(function.__self__)
        return await real_to_thread(function, *args)

    monkeypatch.setattr(check_module.asyncio, "to_thread", spy)
    fifo = tmp_path / "fifo.eml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(b"B: 2\r\n\r\n",))
    writer.start()

    async def main() -> tuple[bytes, bytes, bytes]:
        inline = await check_module.read_file(small)
        from_fifo = await check_module.read_file(fifo)
        monkeypatch.setattr(check_module, "INLINE_READ", 4)
        return inline, from_fifo, await check_module.read_file(small)

    inline, from_fifo, large = asyncio.run(main())
    writer.join()
    assert inline == large == small.read_bytes()
    assert from_fifo == b"B: 2\r\n\r\n"
    assert threaded == [fifo, small]


def test_a_message_on_standard_input(
    setup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FILE "-" reads standard input, as `dkim verify -` does (one reader for both)."""
    import io
    import sys

    stdin = io.TextIOWrapper(io.BytesIO((setup / "good.eml").read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    args = ["--ip", "192.0.2.10", "--helo", "mail.a.example", "--mail-from", "alice@a.example"]
    code, out, err = invoke(capsys, "check", "-", *args, "--json", *offline(setup))
    assert (code, err) == (0, "")
    verdict = json.loads(out)
    assert (verdict["dkim"][0]["result"], verdict["dmarc"]["result"]) == ("pass", "pass")


def test_check_counts_nothing_and_leaves_counting_on(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check runs within metrics.counting_nothing(); a process that goes on (a test, an
    embedding program) counts again after it."""
    from mailwarden import metrics

    args = ["--ip", "192.0.2.10", "--helo", "mail.a.example", "--mail-from", "alice@a.example"]
    code, _, _ = invoke(capsys, "check", str(setup / "good.eml"), *args, "--json", *offline(setup))
    assert code == 0
    assert all(getattr(metrics, name) is not metrics._nothing for name in metrics._RECORDERS)
